"""Every bot turn runs once, against a real Rasa server and the real service: a turn Rasa answered
but the service did not commit (it crashed, or its lease expired) is asked again, and Rasa
replays the recorded answer instead of running the custom actions a second time."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Direction, Message
from api.db import unit_of_work, utcnow
from api.engine import turns
from api.engine.client import EngineTurn, RasaGateway
from api.engine.dispatch import get_gateway, wait_for_scheduled_turns
from api.engine.models import ActionExecution
from api.timeline.models import EntryKind, TimelineEntry
from tests.e2e.stack import WHATSAPP_FROM, Stack
from tests.factories import make_brand, make_case, make_infringer

pytestmark = pytest.mark.e2e
ACKNOWLEDGED = "Infrator confirmou o recebimento da notificação."


class Crash(Exception):
    """The service died after Rasa answered, before it committed the turn."""


def form(phone: str, body: str, sid: str) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": "AC" + "0" * 31 + "7",
        "From": f"whatsapp:{phone}",
        "To": WHATSAPP_FROM,
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Maria",
        "WaId": phone.lstrip("+"),
    }


async def notified_case(phone: str) -> int:
    async with unit_of_work() as session:
        brand = await make_brand(session, base_amount=Decimal("2500.00"))
        infringer = await make_infringer(session, name="Maria Souza", phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = Decimal("2500.00")
        case.notice_sent_at = utcnow() - dt.timedelta(days=2)
        case.response_deadline = (utcnow() + dt.timedelta(days=8)).date()
        return case.id


async def timeline_of(case_id: int) -> list[tuple[str, str]]:
    async with unit_of_work() as session:
        rows = await session.execute(
            sa.select(TimelineEntry.kind, TimelineEntry.summary)
            .where(TimelineEntry.case_id == case_id)
            .order_by(TimelineEntry.id)
        )
        return [(str(kind), summary) for kind, summary in rows]


async def test_a_turn_rasa_answered_but_we_did_not_commit_runs_once_on_retry(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = f"+55119{secrets.randbelow(10**8):08d}"
    case_id = await notified_case(phone)
    answers: list[EngineTurn | None] = []
    real_finish = turns._finish

    async def crash_first(*args: Any, **kwargs: Any) -> None:
        answers.append(kwargs["result"])
        if len(answers) == 1:
            raise Crash("died after Rasa answered, before the commit")
        await real_finish(*args, **kwargs)

    monkeypatch.setattr(turns, "_finish", crash_first)
    sid = "SM" + secrets.token_hex(16)

    assert (await stack.webhook(form(phone, "recebi sim", sid))).status_code == 200
    await wait_for_scheduled_turns()  # the turn ran in Rasa, then "crashed"
    async with unit_of_work() as session:
        message = await session.scalar(sa.select(Message).where(Message.provider_id == sid))
    assert message is not None and message.handled_at is None
    assert await stack.replies_to(phone, count=1, timeout=1.0) == []
    # Rasa ran the acknowledgement's action once: its note is there already.
    assert Counter(await timeline_of(case_id))[("note", ACKNOWLEDGED)] == 1

    # The worker (restarted) finds the left-behind turn and asks Rasa again. Other tests of the
    # session leave their own pending messages in this database, so sweep only this one.
    async with unit_of_work() as session:
        pending = await turns.get_conversations_with_pending(
            session, older_than=dt.timedelta(0), limit=100_000
        )
    assert message.conversation_id in pending
    assert await turns.process_conversation(message.conversation_id, gateway=get_gateway()) == 1

    replies = await stack.replies_to(phone, count=1)
    assert len(replies) == 1
    assert len(await stack.replies_to(phone, count=2, timeout=1.5)) == 1
    first, second = answers
    assert first is not None and second is not None
    assert (first.replayed, second.replayed) == (False, True)
    assert second.messages == first.messages and second.actions == first.actions
    assert first.actions == ["action_acknowledge"]
    assert second.nlu is not None and second.nlu.intent == "acknowledge_notice"

    entries = await timeline_of(case_id)
    duplicated = [entry for entry, n in Counter(entries).items() if n > 1]
    assert duplicated == [], entries
    assert entries.count(("note", ACKNOWLEDGED)) == 1
    async with unit_of_work() as session:
        outbound = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == message.conversation_id,
                Message.direction == Direction.OUTBOUND,
            )
        )
        ledger = list(
            await session.scalars(
                sa.select(ActionExecution.action_name).where(
                    ActionExecution.turn_key == f"msg-{message.id}"
                )
            )
        )
        handled = await session.get(Message, message.id)
    assert outbound == 1
    assert ledger == ["action_acknowledge"]
    assert handled is not None and handled.intent == "acknowledge_notice"
    assert handled.handled_at is not None


async def test_the_gateway_answers_a_message_id_it_processed_without_running_actions(
    stack: Stack,
) -> None:
    phone = f"+55119{secrets.randbelow(10**8):08d}"
    case_id = await notified_case(phone)
    sid = "SM" + secrets.token_hex(16)
    assert (await stack.webhook(form(phone, "recebi sim", sid))).status_code == 200
    assert len(await stack.replies_to(phone, count=1)) == 1
    await wait_for_scheduled_turns()
    async with unit_of_work() as session:
        message = await session.scalar(sa.select(Message).where(Message.provider_id == sid))
    assert message is not None
    before = await timeline_of(case_id)

    gateway = get_gateway()
    assert isinstance(gateway, RasaGateway)
    again = await gateway.send_turn(
        sender=f"conv-{message.conversation_id}",
        text="recebi sim",
        message_id=f"msg-{message.id}",
        channel="whatsapp",
    )

    assert again.replayed is True
    assert again.actions == ["action_acknowledge"]
    assert again.messages and again.messages[0].text
    assert await timeline_of(case_id) == before
    assert EntryKind.NOTE in {EntryKind(kind) for kind, _ in before}


async def test_a_turn_taken_again_after_its_lease_expired_runs_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers hold one turn at once (the first one's lease ran out while Rasa thought):
    both ask Rasa with the same message id; Rasa runs the turn once and replays it to the
    other, and only one of them commits the reply."""
    phone = f"+55119{secrets.randbelow(10**8):08d}"
    case_id = await notified_case(phone)
    async with unit_of_work() as session:
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id="SM" + secrets.token_hex(16),
                sender=f"whatsapp:{phone}",
                text="recebi sim",
                received_at=utcnow(),
                raw={"Body": "recebi sim"},
            ),
        )
        conversation_id = received.conversation.id
    monkeypatch.setattr(turns, "LEASE", dt.timedelta(0))  # every lease is already expired
    answers: list[EngineTurn] = []
    gateway = get_gateway()
    assert isinstance(gateway, RasaGateway)
    real_send = gateway.send_turn

    second: list[asyncio.Task[int]] = []
    both_asking = asyncio.Event()

    async def recorded(**kwargs: Any) -> EngineTurn:
        if not second:
            # The first worker is about to ask Rasa: its lease has already run out, so a second
            # worker takes the same turn; both ask once the second is there too.
            second.append(
                asyncio.create_task(turns.process_conversation(conversation_id, gateway=gateway))
            )
            await both_asking.wait()
        else:
            both_asking.set()
        answer = await real_send(**kwargs)
        answers.append(answer)
        return answer

    monkeypatch.setattr(gateway, "send_turn", recorded)

    await turns.process_conversation(conversation_id, gateway=gateway)
    await second[0]

    assert sorted(answer.replayed for answer in answers) == [False, True]
    assert answers[0].messages == answers[1].messages
    entries = await timeline_of(case_id)
    assert entries.count(("note", ACKNOWLEDGED)) == 1
    async with unit_of_work() as session:
        outbound = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.OUTBOUND,
            )
        )
    assert outbound == 1
