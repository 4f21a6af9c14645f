"""The provider simulators deliver a webhook whose connection dropped before any answer.

Found in CI: a status callback went out on a kept-alive connection the service was closing at
that moment, failed with "Can not write request body", and the message never read DELIVERED.
Real HTTP clients retry a request that met a stale pooled connection; the simulators do too,
once, since our webhooks are idempotent on the provider's message id. The target here is a
raw socket server that reads the first request and closes without answering, then answers
every later one.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest

from api.devtools import twilio_simulator, whatsapp_provider_sim


class DroppingServer:
    """Reads each request whole; drops the first `drops` connections, answers 200 after."""

    def __init__(self, drops: int = 1) -> None:
        self.drops = drops
        self.requests: list[bytes] = []
        self.dropped = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._server = server
        self._ready.set()
        self._loop.run_forever()
        server.close()
        self._loop.run_until_complete(server.wait_closed())

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                if self.dropped < self.drops:
                    self.dropped += 1
                    return  # close without a word, as a server ending a keep-alive does
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def __enter__(self) -> DroppingServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *_exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def assert_delivered_on_the_second_try(answer: dict[str, object], target: DroppingServer) -> None:
    assert answer["status"] == 200, answer
    assert target.dropped == 1
    assert len(target.requests) == 2
    # The same signed body both times: the service dedupes it on the provider's message id.
    first, second = (request.split(b"\r\n\r\n", 1)[1] for request in target.requests)
    assert first == second


@pytest.fixture
def target() -> Iterator[DroppingServer]:
    with DroppingServer() as server:
        yield server


def test_twilio_inbound_webhook_is_tried_again_after_a_dropped_connection(
    target: DroppingServer,
) -> None:
    config = twilio_simulator.SimConfig(webhook_base=f"http://127.0.0.1:{target.port}")
    with twilio_simulator.SimulatorThread(config) as sim:
        answer = httpx.post(
            f"{sim.url}/_sim/inbound",
            json={"from": "+5511987654321", "body": "oi", "message_sid": "SM" + "a" * 32},
            timeout=30,
        ).json()
    assert_delivered_on_the_second_try(answer, target)


@pytest.mark.parametrize("provider", ["meta", "zapi"])
def test_provider_inbound_webhook_is_tried_again_after_a_dropped_connection(
    target: DroppingServer, provider: str
) -> None:
    config = whatsapp_provider_sim.SimConfig(
        provider=provider, webhook_base=f"http://127.0.0.1:{target.port}"
    )
    with whatsapp_provider_sim.SimulatorThread(config) as sim:
        answer = httpx.post(
            f"{sim.url}/_sim/inbound", json={"from": "+5511987654321", "body": "oi"}, timeout=30
        ).json()
    assert_delivered_on_the_second_try(answer, target)


def test_a_target_that_never_answers_is_reported_after_two_tries() -> None:
    with DroppingServer(drops=100) as target:
        config = twilio_simulator.SimConfig(webhook_base=f"http://127.0.0.1:{target.port}")
        with twilio_simulator.SimulatorThread(config) as sim:
            response = httpx.post(
                f"{sim.url}/_sim/inbound", json={"from": "+5511987654321", "body": "oi"}, timeout=30
            )
        assert response.status_code == 502
        assert response.json()["status"] is None
        assert len(target.requests) == 2
