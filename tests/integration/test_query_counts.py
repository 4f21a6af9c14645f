"""Query budgets ("at most N queries") on the hot paths: the inbox, the case timeline and the
WhatsApp webhook. Each is also measured with few and with many rows: the count must not grow
with the data (no query per row)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.conversations.models import Conversation, Message
from api.db import unit_of_work
from api.engine import dispatch
from api.events import consumers
from api.events.consumers import get_cursor
from api.events.models import StoredEvent
from api.handoff.service import do_add_note, do_request_handoff
from api.notifications.live import NAME as LIVE_NOTIFICATIONS
from api.timeline.service import Actor
from tests.factories import make_analyst
from tests.fixtures.twilio.harness import (
    MESSAGE_PATH,
    TwilioStack,
    eventually,
    load_form,
    new_phone,
    new_sid,
    twilio_stack,
)
from tests.helpers.queries import assert_max_queries, count_queries
from tests.integration.test_events_capture import whatsapp_case

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

INBOX_QUERIES = 2
TIMELINE_QUERIES = 4
# Before the acknowledgement: identify the sender with its open conversation (one statement),
# store the message (on PostgreSQL moving the conversation's last_inbound_at in the same
# statement; SQLite: one more), its timeline entry and its event. The inline consumers (live
# notifications, "infringer replied" alerts) and the turn's scheduling run after the response
# has gone out.
WEBHOOK_QUERIES = 5


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def token_headers(client: httpx.AsyncClient) -> dict[str, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        email = analyst.email
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def waiting_conversations(count: int) -> int:
    case_id = 0
    for _ in range(count):
        conversation_id, case_id, _ = await whatsapp_case()
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await do_request_handoff(
                session, conversation=conversation, reason="fila", actor=Actor.bot()
            )
    return case_id


async def test_the_inbox_takes_a_fixed_number_of_queries(client: httpx.AsyncClient) -> None:
    headers = await token_headers(client)
    await waiting_conversations(2)
    with count_queries() as few:
        response = await client.get("/api/v1/handoffs?state=waiting", headers=headers)
    assert response.status_code == 200
    await waiting_conversations(8)
    with assert_max_queries(INBOX_QUERIES) as many:
        response = await client.get("/api/v1/handoffs?state=waiting", headers=headers)
    assert response.status_code == 200 and len(response.json()) >= 10
    assert many.count == few.count, f"{few.count} → {many.count} queries:\n{many}"


async def test_the_case_timeline_takes_a_fixed_number_of_queries(
    client: httpx.AsyncClient,
) -> None:
    headers = await token_headers(client)
    conversation_id, case_id, _ = await whatsapp_case()
    url = f"/api/v1/cases/{case_id}/timeline"
    with count_queries() as few:
        assert (await client.get(url, headers=headers)).status_code == 200
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        conversation = await session.get(Conversation, conversation_id)
        for n in range(15):
            await do_add_note(session, analyst=analyst, text=f"nota {n}", conversation=conversation)
    with assert_max_queries(TIMELINE_QUERIES) as many:
        response = await client.get(url, headers=headers)
    assert response.status_code == 200
    assert many.count == few.count, f"{few.count} → {many.count} queries:\n{many}"


@pytest.fixture
async def stack(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TwilioStack]:
    # Only the webhook's own work is counted: the bot turn it schedules after commit is not.
    def no_turns(_conversation_id: int) -> None:
        return None

    monkeypatch.setattr(dispatch, "schedule_turns", no_turns)
    async with twilio_stack() as running:
        yield running


async def test_the_whatsapp_webhook_takes_a_bounded_number_of_queries(
    stack: TwilioStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inline consumers' passes the webhook starts run beside its response: they are held
    # back here until the acknowledgement's own queries have been counted.
    release = asyncio.Event()
    real_run = consumers._Drainer._run

    async def held_back(self: consumers._Drainer) -> None:
        await release.wait()
        await real_run(self)

    async def let_them_run() -> None:
        release.set()
        await consumers.wait_for_inline_drains()
        release.clear()

    monkeypatch.setattr(consumers._Drainer, "_run", held_back)
    phone = new_phone()
    first = load_form("message_text", From=f"whatsapp:{phone}", MessageSid=new_sid())
    response = await stack.post_signed(MESSAGE_PATH, first)  # creates contact and conversation
    assert response.status_code == 200
    await let_them_run()
    sid = new_sid()
    try:
        with assert_max_queries(WEBHOOK_QUERIES) as log:
            response = await stack.post_signed(
                MESSAGE_PATH, load_form("message_text", From=f"whatsapp:{phone}", MessageSid=sid)
            )
        assert response.status_code == 200
        assert log.count > 0
        # Acknowledged before the consumers ran: their passes are still waiting.
        assert consumers._background_drains
    finally:
        await let_them_run()
    async with unit_of_work() as session:
        message = await session.scalar(sa.select(Message).where(Message.provider_id == sid))
        assert message is not None
        received = await session.scalar(
            sa.select(StoredEvent).where(
                StoredEvent.kind == "message.received",
                StoredEvent.conversation_id == message.conversation_id,
                StoredEvent.payload["message_id"].as_integer() == message.id,
            )
        )
        assert received is not None
        position = (received.tx_id, received.id)

    async def consumed() -> bool:
        async with unit_of_work() as session:
            cursor = await get_cursor(session, LIVE_NOTIFICATIONS)
        return cursor is not None and cursor >= position

    # Another test process on the shared database may hold the cursor for a moment.
    assert await eventually(consumed)
