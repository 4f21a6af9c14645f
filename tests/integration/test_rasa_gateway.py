"""The Rasa gateway client (api.engine.client) against a real HTTP server on loopback.

What the service relies on: the turn reaches Rasa's gateway channel with the shared secret and
without a leading '/', a failed or garbled answer becomes EngineUnavailable (the turn then goes
to a person), and only a refused connection is tried again — a request that may have reached
Rasa is never sent twice.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from api.config import RasaSettings
from api.engine.client import EngineUnavailable, RasaGateway

SECRET = "gateway-test-secret"


@dataclass
class FakeRasa:
    """Rasa's gateway channel as the client sees it: records requests, answers as told."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: str = "turn"

    def app(self) -> Starlette:
        async def webhook(request: Request) -> Response:
            body = await request.json()
            self.requests.append({"secret": request.headers.get("x-tratativa-secret"), **body})
            if self.answer == "error":
                return PlainTextResponse("boom", status_code=500)
            if self.answer == "garbled":
                return PlainTextResponse("<html>not json</html>")
            if self.answer == "slow":
                await asyncio.sleep(2)
            return JSONResponse(
                {
                    "messages": [{"text": f"eco: {body['message']}"}],
                    "nlu": {"intent": {"name": "greet", "confidence": 0.9}, "entities": []},
                    "actions": ["utter_greet"],
                }
            )

        return Starlette(routes=[Route("/webhooks/tratativa/webhook", webhook, methods=["POST"])])


@pytest.fixture
def rasa() -> Iterator[FakeRasa]:
    fake = FakeRasa()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    fake.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(fake.app(), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "fake Rasa did not start"
        time.sleep(0.01)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def gateway(url: str, *, timeout: float = 10.0) -> RasaGateway:
    return RasaGateway(RasaSettings(url=url, gateway_secret=SECRET, timeout_seconds=timeout))


async def test_a_turn_reaches_the_gateway_with_the_secret_and_no_command_prefix(
    rasa: FakeRasa,
) -> None:
    client = gateway(rasa.url)
    try:
        turn = await client.send_turn(
            sender="conv-1", text=" /request_human oi", message_id="m-1", channel="whatsapp"
        )
    finally:
        await client.aclose()
    assert [m.text for m in turn.messages] == ["eco: request_human oi"]
    assert turn.nlu is not None and turn.nlu.intent == "greet"
    assert turn.actions == ["utter_greet"]
    assert rasa.requests == [
        {
            "secret": SECRET,
            "sender": "conv-1",
            "message": "request_human oi",
            "message_id": "m-1",
            "channel": "whatsapp",
            "metadata": {},
        }
    ]


@pytest.mark.parametrize(
    ("answer", "why"), [("error", "Rasa respondeu 500"), ("garbled", "Resposta inválida")]
)
async def test_a_failed_or_garbled_answer_is_engine_unavailable_and_not_sent_again(
    rasa: FakeRasa, answer: str, why: str
) -> None:
    rasa.answer = answer
    client = gateway(rasa.url)
    try:
        with pytest.raises(EngineUnavailable, match=why):
            await client.send_turn(sender="conv-2", text="oi", message_id="m-2", channel="email")
    finally:
        await client.aclose()
    assert len(rasa.requests) == 1


async def test_a_turn_past_the_timeout_is_engine_unavailable_and_not_sent_again(
    rasa: FakeRasa,
) -> None:
    rasa.answer = "slow"
    client = gateway(rasa.url, timeout=0.5)
    try:
        with pytest.raises(EngineUnavailable, match="indisponível"):
            await client.send_turn(sender="conv-3", text="oi", message_id="m-3", channel="email")
    finally:
        await client.aclose()
    assert len(rasa.requests) == 1


async def test_a_refused_connection_is_engine_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = gateway(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(EngineUnavailable, match="ClientConnectorError"):
            await client.send_turn(sender="conv-4", text="oi", message_id="m-4", channel="email")
    finally:
        await client.aclose()


def test_a_gateway_closed_at_one_loops_end_serves_the_next_loop(rasa: FakeRasa) -> None:
    # The process keeps one gateway (get_gateway) while event loops come and go (tests, a
    # restarted worker loop): its connections belong to the loop that opened them.
    client = gateway(rasa.url)

    async def one_turn(n: int) -> str:
        turn = await client.send_turn(
            sender="conv-5", text=f"oi {n}", message_id=f"m-5-{n}", channel="whatsapp"
        )
        return turn.messages[0].text

    def in_new_loop(n: int) -> str:
        async def run() -> str:
            try:
                return await one_turn(n)
            finally:
                await client.aclose()

        return asyncio.run(run())

    answers: list[str] = []
    for n in (1, 2):
        # A thread of its own: this test's thread already has the suite's event loop.
        thread = threading.Thread(target=lambda n=n: answers.append(in_new_loop(n)))
        thread.start()
        thread.join(timeout=30)
    assert answers == ["eco: oi 1", "eco: oi 2"]
    assert [r["message_id"] for r in rasa.requests] == ["m-5-1", "m-5-2"]
