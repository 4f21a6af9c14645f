"""A worker killed in the middle of a delivery loses nothing: after a restart the row is sent,
once (the provider had not accepted it when the worker died)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel
from api.conversations.outbound import Outbound, do_queue_outbound
from api.db import unit_of_work, utcnow
from api.devtools.twilio_simulator import SimConfig, SimulatorThread
from api.outbox.models import OutboxItem, OutboxState
from api.timeline.service import Actor

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SID, TOKEN, FROM = "AC" + "0" * 31 + "9", "crash-test-token", "whatsapp:+14155238886"


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    sim = SimulatorThread(
        SimConfig(
            account_sid=SID,
            auth_token=TOKEN,
            whatsapp_number=FROM,
            webhook_base="http://127.0.0.1:9",  # status callbacks go nowhere
        )
    )
    with sim:
        yield sim


def start_worker(database_url: str, sim: SimulatorThread) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_WHATSAPP_FROM": FROM,
        "TWILIO_API_BASE_URL": sim.url,
        "OUTBOX_LEASE_SECONDS": "2",
    }
    env.pop("RASA_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def wait_for(
    check: Callable[[], Awaitable[object]], what: str, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def sim_messages(sim_api: httpx.AsyncClient, phone: str) -> list[dict[str, str]]:
    response = await sim_api.get("/_sim/messages", params={"to": f"whatsapp:{phone}"})
    messages: list[dict[str, str]] = response.json()["messages"]
    return messages


async def rejected(sim_api: httpx.AsyncClient) -> int:
    return int((await sim_api.get("/_sim")).json()["rejected"])


async def test_a_worker_killed_mid_delivery_delivers_once_after_restart(
    database_url: str, simulator: SimulatorThread
) -> None:
    phone = f"+55119{int(time.time() * 1000) % 10**8:08d}"
    async with unit_of_work() as session:
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SMcrash{phone}",
                sender=f"whatsapp:{phone}",
                text="oi",
                received_at=utcnow(),
                raw={},
                answerable=False,
            ),
        )
        message = await do_queue_outbound(
            session,
            conversation=received.conversation,
            outbound=Outbound(text="Olá! Recebemos a sua mensagem."),
            actor=Actor.bot(),
        )
    sim_api = httpx.AsyncClient(base_url=simulator.url, timeout=5)
    # Twilio is slow to answer this one (and will not accept it): the worker dies meanwhile.
    fault = await sim_api.post(
        "/_sim/faults",
        json={"status": 503, "count": 1, "to": f"whatsapp:{phone}", "delay_seconds": 20},
    )
    fault.raise_for_status()
    rejected_before = await rejected(sim_api)

    first = start_worker(database_url, simulator)
    try:

        async def sending() -> bool:
            return await rejected(sim_api) > rejected_before

        await wait_for(sending, "the send")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()

    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message.id)
        )
    assert item is not None and item.state is OutboxState.IN_FLIGHT  # claimed, never finished
    assert await sim_messages(sim_api, phone) == []

    second = start_worker(database_url, simulator)
    try:
        await wait_for(lambda: sim_messages(sim_api, phone), "the delivery after restart")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    delivered = await sim_messages(sim_api, phone)
    await sim_api.aclose()
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message.id)
        )
    assert [m["body"] for m in delivered] == ["Olá! Recebemos a sua mensagem."]
    assert item is not None and (item.state, item.attempts) == (OutboxState.DONE, 2)
