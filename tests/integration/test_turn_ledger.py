"""Every custom action runs once per turn: the action server's ledger, called as Rasa 3.6 calls it,
on the real database. A turn Rasa runs again (it died before saving its tracker, or a second
Rasa took the turn after a lease expired) sends the same calls with the same message id."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel
from api.conversations.service import create_conversation, sender_id_for
from api.db import unit_of_work, utcnow
from api.engine.ledger import action_key
from api.engine.models import ActionExecution
from api.timeline.models import EntryKind, TimelineEntry
from api.worker import LEDGER_KEEP, prune_ledger_once
from tests.factories import make_brand, make_case, make_infringer
from tests.helpers.queries import count_queries

pytestmark = pytest.mark.integration

TOKEN = "dev-action-token"
ACKNOWLEDGED = "Infrator confirmou o recebimento da notificação."


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def notified_case() -> tuple[int, str]:
    phone = f"+55119{secrets.randbelow(10**8):08d}"
    async with unit_of_work() as session:
        brand = await make_brand(session, base_amount=Decimal("2000.00"))
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        return case.id, sender_id_for(conversation)


def action_call(
    action: str,
    sender: str,
    *,
    message_id: str | None,
    text: str = "recebi sim",
    intent: str = "acknowledge",
    earlier_actions: tuple[str, ...] = (),
) -> dict[str, Any]:
    """An action call shaped like Rasa 3.6's: the user turn (with its message id) and the
    actions already run after it in this turn."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.97},
        "entities": [],
        "metadata": {"channel": "whatsapp"},
    }
    user: dict[str, Any] = {"event": "user", "text": text, "parse_data": latest}
    if message_id is not None:
        user["message_id"] = message_id
    events = [
        {"event": "action", "name": "action_listen"},
        user,
        {"event": "user_featurization", "use_text_for_featurization": False},
        *({"event": "action", "name": name} for name in earlier_actions),
    ]
    return {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {"slots": {}, "responses": {}},
        "tracker": {
            "sender_id": sender,
            "slots": {},
            "latest_message": latest,
            "events": events,
            "paused": False,
            "latest_action_name": "action_listen",
        },
    }


async def post(client: httpx.AsyncClient, call: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/actions/webhook?token={TOKEN}", json=call)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def acknowledged_notes(case_id: int) -> int:
    async with unit_of_work() as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(TimelineEntry)
                .where(
                    TimelineEntry.case_id == case_id,
                    TimelineEntry.kind == EntryKind.NOTE,
                    TimelineEntry.summary == ACKNOWLEDGED,
                )
            )
            or 0
        )


async def status_changes(case_id: int) -> int:
    async with unit_of_work() as session:
        return int(
            await session.scalar(
                sa.select(sa.func.count())
                .select_from(TimelineEntry)
                .where(
                    TimelineEntry.case_id == case_id,
                    TimelineEntry.kind == EntryKind.STATUS_CHANGE,
                )
            )
            or 0
        )


async def test_an_action_run_again_for_the_same_turn_writes_nothing_and_answers_the_same(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await notified_case()
    call = action_call("action_acknowledge", sender, message_id="msg-ledger-1")
    first = await post(client, call)
    moves = await status_changes(case_id)
    again = await post(client, call)
    assert first["responses"] and again == first
    assert await acknowledged_notes(case_id) == 1
    assert await status_changes(case_id) == moves
    async with unit_of_work() as session:
        rows = list(
            await session.scalars(
                sa.select(ActionExecution).where(ActionExecution.sender_id == sender)
            )
        )
    assert [(r.turn_key, r.action_name, r.occurrence) for r in rows] == [
        ("msg-ledger-1", "action_acknowledge", 0)
    ]


async def test_the_next_turn_and_a_second_run_within_a_turn_do_run(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await notified_case()
    await post(client, action_call("action_acknowledge", sender, message_id="msg-a"))
    # The same action predicted twice after one message is two runs (occurrence 0 and 1).
    await post(
        client,
        action_call(
            "action_acknowledge",
            sender,
            message_id="msg-a",
            earlier_actions=("action_acknowledge",),
        ),
    )
    await post(client, action_call("action_acknowledge", sender, message_id="msg-b"))
    assert await acknowledged_notes(case_id) == 3


async def test_a_call_without_a_message_id_is_not_deduplicated(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await notified_case()
    call = action_call("action_acknowledge", sender, message_id=None)
    assert action_key(call) is None
    await post(client, call)
    await post(client, call)
    assert await acknowledged_notes(case_id) == 2


async def test_concurrent_runs_of_one_turn_commit_one_set_of_writes(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await notified_case()
    call = action_call("action_acknowledge", sender, message_id="msg-concurrent")
    bodies = await asyncio.gather(*(post(client, call) for _ in range(4)))
    assert all(body == bodies[0] for body in bodies)
    assert await acknowledged_notes(case_id) == 1


async def test_the_ledger_and_the_conversation_are_read_in_one_statement(
    client: httpx.AsyncClient,
) -> None:
    """Every bot action loads its conversation: the ledger lookup brings it along, so the
    action's own load asks the database nothing (one statement per action call saved)."""
    case_id, sender = await notified_case()
    call = action_call("action_acknowledge", sender, message_id="msg-one-read")
    with count_queries() as log:
        first = await post(client, call)
    assert first["responses"] and await acknowledged_notes(case_id) == 1
    conversation_reads = [
        s
        for s in log.statements
        if s.startswith("SELECT") and "FROM conversations" in s and "FOR UPDATE" not in s
    ]
    assert len(conversation_reads) == 1, log
    assert "action_executions" in conversation_reads[0], log
    # The replay is answered from the same single statement.
    with count_queries() as log:
        assert await post(client, call) == first
    assert log.count == 1, log
    assert await acknowledged_notes(case_id) == 1


@pytest.mark.parametrize("sender", ["conv-2147480000", "console-user"])
async def test_a_call_without_a_stored_conversation_is_still_run_once(
    client: httpx.AsyncClient, sender: str
) -> None:
    """A sender id naming no conversation (gone, or not ours: a call made by hand with a
    message id) is keyed all the same: the second call is a replay."""
    call = action_call("action_acknowledge", sender, message_id=f"msg-{secrets.token_hex(6)}")
    first = await post(client, call)
    assert await post(client, call) == first
    async with unit_of_work() as session:
        runs = await session.scalar(
            sa.select(sa.func.count())
            .select_from(ActionExecution)
            .where(ActionExecution.sender_id == sender)
        )
    assert runs == 1


def test_the_key_is_the_latest_user_turn_and_the_runs_of_the_action_since() -> None:
    call = action_call(
        "action_x",
        "conv-7",
        message_id="msg-42",
        earlier_actions=("action_y", "action_x", "action_x"),
    )
    key = action_key(call)
    assert key is not None
    assert (key.sender_id, key.turn_key, key.action_name, key.occurrence) == (
        "conv-7",
        "msg-42",
        "action_x",
        2,
    )


async def test_the_worker_prunes_runs_no_retry_can_need(client: httpx.AsyncClient) -> None:
    _, sender = await notified_case()
    await post(client, action_call("action_acknowledge", sender, message_id="msg-old"))
    await post(client, action_call("action_acknowledge", sender, message_id="msg-new"))
    async with unit_of_work() as session:
        old = await session.scalar(
            sa.select(ActionExecution).where(
                ActionExecution.sender_id == sender, ActionExecution.turn_key == "msg-old"
            )
        )
        assert old is not None
        old.created_at = utcnow() - LEDGER_KEEP - dt.timedelta(minutes=1)
    assert await prune_ledger_once() >= 1
    async with unit_of_work() as session:
        kept = list(
            await session.scalars(
                sa.select(ActionExecution.turn_key).where(ActionExecution.sender_id == sender)
            )
        )
    assert kept == ["msg-new"]
