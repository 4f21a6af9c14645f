"""Pause and resume reach Rasa durably: the handoff events become engine commands (the
`engine-commands` consumer), and a claim while Rasa is down still pauses it once Rasa is back,
before the resume that followed, and neither is sent twice.

Rasa's gateway is played by a small HTTP server on a loopback port (the client speaks real HTTP
to it); "down" is that port bound but not listening, so every connection is refused.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.config import get_settings
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import AuthorKind, Channel, DeliveryStatus, Direction, Message
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.engine import commands, turns
from api.engine.client import get_gateway
from api.engine.commands import deliver_engine_commands
from api.engine.models import EngineCommand, EngineCommandKind, EngineCommandState
from api.events import consumers
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(30_000_000, 99_999_999, 104729))
SECRET = "test-gateway-secret"


class StandInRasa:
    """Records the events our gateway channel receives; refuses connections until started."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[tuple[str, list[dict[str, Any]]]] = []
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    def received_for(self, sender: str) -> list[list[dict[str, Any]]]:
        """What this conversation's tracker got (other tests' conversations may be owed too)."""
        return [events for who, events in self.received if who == sender]

    async def events(self, request: Request) -> JSONResponse:
        if request.headers.get("X-Tratativa-Secret") != SECRET:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        body = await request.json()
        self.received.append((body["sender"], body["events"]))
        paused = any(e.get("event") == "pause" for e in body["events"])
        return JSONResponse({"paused": paused})

    async def start(self) -> None:
        app = Starlette(routes=[Route("/webhooks/tratativa/events", self.events, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[self.sock]))
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert not self._task.done() and time.monotonic() < deadline, "stand-in did not start"
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self.sock.close()


@pytest.fixture
async def rasa() -> AsyncIterator[StandInRasa]:
    stand_in = StandInRasa()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RASA_URL", stand_in.url)
        mp.setenv("RASA_GATEWAY_SECRET", SECRET)
        mp.setenv("RASA_TIMEOUT_SECONDS", "2")
        get_settings.cache_clear()
        get_gateway.cache_clear()
        try:
            yield stand_in
        finally:
            await stand_in.stop()
    get_settings.cache_clear()
    get_gateway.cache_clear()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(commands, "backoff_seconds", lambda attempt: 0.0)
    yield


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _login(client: httpx.AsyncClient) -> dict[str, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=Role.ANALYST)
        email = analyst.email
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def _conversation() -> int:
    phone = f"+55279{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=1)
        return conversation.id


async def _commands_once_consumed(conversation_id: int, count: int) -> list[EngineCommand]:
    """The conversation's commands once the consumer has read its handoff events, as the worker
    does. On PostgreSQL an event becomes readable only when every older transaction of the
    server has ended (api/events/consumers.py), which other connections can delay a little."""
    deadline = time.monotonic() + 15
    while True:
        await consumers.drain(commands.ENGINE_COMMANDS)
        rows = await _commands(conversation_id)
        if len(rows) >= count or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def _commands(conversation_id: int) -> list[EngineCommand]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(EngineCommand)
            .where(EngineCommand.conversation_id == conversation_id)
            .order_by(EngineCommand.id)
        )
        return list(rows.all())


async def test_pause_missed_while_rasa_is_down_arrives_later_before_the_resume(
    rasa: StandInRasa, client: httpx.AsyncClient, no_backoff: None
) -> None:
    headers = await _login(client)
    conversation_id = await _conversation()
    sender = f"conv-{conversation_id}"

    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200, claimed.text
    released = await client.post(
        f"/api/v1/conversations/{conversation_id}/release", headers=headers, json={}
    )
    assert released.status_code == 200, released.text

    # Rasa was down: the analyst's requests succeeded, and Rasa is still owed both commands.
    owed = await _commands_once_consumed(conversation_id, 2)
    assert [(c.kind, c.state) for c in owed] == [
        (EngineCommandKind.PAUSE, EngineCommandState.PENDING),
        (EngineCommandKind.RESUME, EngineCommandState.PENDING),
    ]
    assert owed[0].attempts >= 1 and owed[0].last_error
    assert owed[1].attempts == 0  # held back behind the undelivered pause
    assert rasa.received_for(sender) == []

    await rasa.start()
    assert await deliver_engine_commands(get_gateway(), conversation_id=conversation_id) == 2

    assert [[e["event"] for e in events] for events in rasa.received_for(sender)] == [
        ["pause"],
        ["slot", "slot", "resume"],
    ]
    assert [c.state for c in await _commands(conversation_id)] == [EngineCommandState.DONE] * 2

    # A later worker pass sends nothing again.
    assert await deliver_engine_commands(get_gateway(), conversation_id=conversation_id) == 0
    assert len(rasa.received_for(sender)) == 2


async def test_claim_with_rasa_up_pauses_it_right_after_commit(
    rasa: StandInRasa, client: httpx.AsyncClient
) -> None:
    await rasa.start()
    headers = await _login(client)
    conversation_id = await _conversation()

    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200, claimed.text
    await _commands_once_consumed(conversation_id, 1)

    assert rasa.received_for(f"conv-{conversation_id}") == [[{"event": "pause"}]]
    assert [c.state for c in await _commands(conversation_id)] == [EngineCommandState.DONE]


async def test_a_command_whose_worker_died_is_sent_once_after_its_lease(
    rasa: StandInRasa, client: httpx.AsyncClient, no_backoff: None
) -> None:
    """A worker that claimed a command and died leaves it in flight; once the lease ends another
    worker sends it, and only once."""
    headers = await _login(client)
    conversation_id = await _conversation()
    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200
    assert len(await _commands_once_consumed(conversation_id, 1)) == 1
    async with unit_of_work() as session:
        command = await session.scalar(
            sa.select(EngineCommand).where(EngineCommand.conversation_id == conversation_id)
        )
        assert command is not None
        command.state = EngineCommandState.IN_FLIGHT
        command.locked_until = utcnow() + dt.timedelta(minutes=1)

    await rasa.start()
    assert await deliver_engine_commands(get_gateway(), conversation_id=conversation_id) == 0
    async with unit_of_work() as session:
        await session.execute(
            sa.update(EngineCommand)
            .where(EngineCommand.conversation_id == conversation_id)
            .values(locked_until=utcnow() - dt.timedelta(seconds=1))
        )
    assert await deliver_engine_commands(get_gateway(), conversation_id=conversation_id) == 1
    assert await deliver_engine_commands(get_gateway(), conversation_id=conversation_id) == 0
    assert rasa.received_for(f"conv-{conversation_id}") == [[{"event": "pause"}]]


async def test_a_handoff_event_the_request_did_not_turn_into_a_command_is_by_the_worker_once(
    rasa: StandInRasa, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process died between the claim's commit and its inline consumer: the event is still
    in the stream, and the worker's run of the consumer makes it exactly one command."""
    headers = await _login(client)
    conversation_id = await _conversation()
    monkeypatch.setattr(consumers, "_excluded_here", {commands.ENGINE_COMMANDS.name})
    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200
    assert await _commands(conversation_id) == []

    monkeypatch.setattr(consumers, "_excluded_here", set())
    await rasa.start()
    await _commands_once_consumed(conversation_id, 1)
    await consumers.drain(commands.ENGINE_COMMANDS)
    assert [(c.kind, c.state) for c in await _commands(conversation_id)] == [
        (EngineCommandKind.PAUSE, EngineCommandState.DONE)
    ]
    assert rasa.received_for(f"conv-{conversation_id}") == [[{"event": "pause"}]]


async def owed(conversation_id: int) -> bool:
    """Whether Rasa is owed a catch-up, asked alone and as the next turn reads it (the bot
    loop takes it from the same query as the turn's message): both must say the same."""
    async with unit_of_work() as session:
        alone = await commands.catch_up_owed(session, conversation_id=conversation_id)
        turn = await turns._oldest_ready(session, conversation_id)
    assert turn is not None and turn.catch_up is alone
    return alone


async def _unanswered_message(conversation_id: int) -> None:
    async with unit_of_work() as session:
        session.add(
            Message(
                conversation_id=conversation_id,
                direction=Direction.INBOUND,
                channel=Channel.WHATSAPP,
                author_kind=AuthorKind.INFRINGER,
                text="oi",
                delivery_status=DeliveryStatus.RECEIVED,
            )
        )


async def test_a_turn_catches_up_exactly_while_rasa_is_owed_something(
    rasa: StandInRasa, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The turn skips the catch-up (a consumer pass and a claim) only when nothing is owed: no
    handoff event of the conversation left unread by the consumer, no command undelivered."""
    headers = await _login(client)
    conversation_id = await _conversation()
    await _unanswered_message(conversation_id)
    await consumers.drain(commands.ENGINE_COMMANDS)
    assert await owed(conversation_id) is False

    monkeypatch.setattr(consumers, "_excluded_here", {commands.ENGINE_COMMANDS.name})
    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200
    assert await _commands(conversation_id) == []
    assert await owed(conversation_id) is True  # the event, not yet a command

    monkeypatch.setattr(consumers, "_excluded_here", set())
    [command] = await _commands_once_consumed(conversation_id, 1)
    assert command.state is EngineCommandState.PENDING  # Rasa is down
    assert await owed(conversation_id) is True  # the command, not yet delivered

    await rasa.start()
    delivered = await deliver_engine_commands(
        get_gateway(), conversation_id=conversation_id, now=True
    )
    assert delivered == 1
    assert await owed(conversation_id) is False


async def test_delivered_commands_are_pruned_after_a_week_and_owed_ones_never(
    rasa: StandInRasa, client: httpx.AsyncClient
) -> None:
    headers = await _login(client)
    conversation_id = await _conversation()
    claimed = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=headers)
    assert claimed.status_code == 200
    released = await client.post(
        f"/api/v1/conversations/{conversation_id}/release", headers=headers, json={}
    )
    assert released.status_code == 200
    pause, resume = await _commands_once_consumed(conversation_id, 2)
    async with unit_of_work() as session:
        # The pause was delivered eight days ago; the resume is still owed (Rasa was down).
        await session.execute(
            sa.update(EngineCommand)
            .where(EngineCommand.id == pause.id)
            .values(state=EngineCommandState.DONE, done_at=utcnow() - dt.timedelta(days=8))
        )
        await session.execute(
            sa.update(EngineCommand)
            .where(EngineCommand.id == resume.id)
            .values(state=EngineCommandState.PENDING, done_at=None)
        )
    async with unit_of_work() as session:
        assert await commands.do_prune_engine_commands(session, older_than=dt.timedelta(days=7))
    assert [c.id for c in await _commands(conversation_id)] == [resume.id]
