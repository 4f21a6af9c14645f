"""The inbound pipeline, the outbound queue, the outbox and the bot loop, on the real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.config import RasaSettings, get_settings
from api.contacts.models import ContactPoint
from api.conversations.delivery import do_update_delivery_status
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation, DeliveryStatus, Holder, Message
from api.conversations.outbound import (
    ContactSuppressed,
    Outbound,
    WindowClosed,
    do_queue_outbound,
)
from api.db import unit_of_work, utcnow
from api.engine.client import RasaGateway
from api.engine.texts import ENGINE_DOWN_REPLY, OPT_OUT_CONFIRMATION
from api.engine.turns import process_conversation
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.senders import Envelope, SendResult
from api.outbox.service import claim_due, do_mark_failed, do_mark_sent
from api.templates.service import (
    get_template,
    load_catalog,
    template_ref,
)
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_phone_seq = iter(range(10_000_000, 99_999_999, 7919))


def new_phone() -> str:
    return f"+55219{next(_phone_seq):08d}"


def inbound(phone: str, text: str, sid: str, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=sid,
        sender=f"whatsapp:{phone}",
        text=text,
        received_at=utcnow(),
        raw={"Body": text},
        **kw,
    )


async def case_with_phone(status: CaseStatus = CaseStatus.NOTIFICADO) -> tuple[int, str]:
    phone = new_phone()
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer, status=status)
        return case.id, phone


async def receive(phone: str, text: str, sid: str) -> tuple[int, int, bool]:
    async with unit_of_work() as session:
        got = await do_receive_message(session, inbound(phone, text, sid))
        return got.message.id, got.conversation.id, got.created


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_opened: list[RasaGateway] = []


def gateway_to_nowhere() -> RasaGateway:
    gateway = RasaGateway(RasaSettings(url=f"http://127.0.0.1:{closed_port()}", timeout_seconds=2))
    _opened.append(gateway)
    return gateway


@pytest.fixture(autouse=True)
async def _close_gateways() -> AsyncIterator[None]:
    yield
    while _opened:
        await _opened.pop().aclose()


async def outbound_texts(conversation_id: int) -> list[str]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.direction == "outbound")
            .order_by(Message.id)
        )
        return list(rows)


async def test_a_replayed_message_is_stored_once_and_engages_the_case() -> None:
    case_id, phone = await case_with_phone()
    first = await receive(phone, "oi, recebi a notificação", "SMreplay1")
    again = await receive(phone, "oi, recebi a notificação", "SMreplay1")
    assert first[2] is True and again[2] is False
    assert first[:2] == again[:2]
    async with unit_of_work() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.provider_id == "SMreplay1")
        )
        case = await session.get(Case, case_id)
        entries = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.message_id == first[0])
        )
    assert count == 1 and entries == 1
    assert case is not None and case.status is CaseStatus.EM_ATENDIMENTO


async def test_rasa_down_hands_off_once_and_never_answers_twice() -> None:
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "quanto é?", "SMdown1")
    handled = await process_conversation(conversation_id, gateway=gateway_to_nowhere())
    assert handled == 1
    await receive(phone, "alo?", "SMdown2")
    await process_conversation(conversation_id, gateway=gateway_to_nowhere())
    assert await outbound_texts(conversation_id) == [ENGINE_DOWN_REPLY]
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        pending = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == "inbound",
                Message.handled_at.is_(None),
            )
        )
    assert conversation is not None and conversation.holder is Holder.WAITING_HUMAN
    assert conversation.handoff_reason is not None and "Rasa" in conversation.handoff_reason
    assert pending == 0


async def test_concurrent_workers_take_each_turn_once() -> None:
    _, phone = await case_with_phone()
    conversation_id = 0
    for n in range(3):
        _, conversation_id, _ = await receive(phone, f"mensagem {n}", f"SMconc{n}")
    results = await asyncio.gather(
        *(process_conversation(conversation_id, gateway=None) for _ in range(4))
    )
    assert sum(results) == 3
    # Rasa not configured: a person is asked for once, the infringer told once.
    assert await outbound_texts(conversation_id) == [ENGINE_DOWN_REPLY]


async def test_opt_out_keyword_confirms_once_and_suppresses() -> None:
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "SAIR", "SMoptout1")
    await process_conversation(conversation_id, gateway=gateway_to_nowhere())
    assert await outbound_texts(conversation_id) == [OPT_OUT_CONFIRMATION]
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        assert contact is not None and contact.opted_out_at is not None
        with pytest.raises(ContactSuppressed):
            await do_queue_outbound(
                session,
                conversation=conversation,
                outbound=Outbound(text="olá de novo"),
                actor=Actor.bot(),
            )


async def test_free_text_outside_the_window_is_refused_but_a_template_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", '{"lembrete_prazo": "HX0123456789abcdef"}')
    get_settings.cache_clear()
    load_catalog.cache_clear()
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "oi", "SMwindow1")
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=25)
        with pytest.raises(WindowClosed):
            await do_queue_outbound(
                session, conversation=conversation, outbound=Outbound(text="oi"), actor=Actor.bot()
            )
        template = get_template("lembrete_prazo")
        ref = template_ref(
            template,
            {
                "infringer_name": "Ana",
                "case_ref": "INF-2026-000001",
                "brand": "X",
                "deadline": "01/12/2026",
            },
        )
        message = await do_queue_outbound(
            session,
            conversation=conversation,
            outbound=Outbound(text="", template=ref),
            actor=Actor.system(),
        )
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message.id)
        )
    assert item is not None
    assert item.payload["content_sid"] == "HX0123456789abcdef"
    assert item.payload["content_variables"] == {
        "1": "Ana",
        "2": "INF-2026-000001",
        "3": "X",
        "4": "01/12/2026",
    }
    assert "01/12/2026" in message.text
    load_catalog.cache_clear()


async def test_outbox_keeps_order_and_recovers_a_dead_workers_rows() -> None:
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "oi", "SMorder1")
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        ids = [
            (
                await do_queue_outbound(
                    session,
                    conversation=conversation,
                    outbound=Outbound(text=f"parte {n}"),
                    actor=Actor.bot(),
                )
            ).id
            for n in range(2)
        ]
    async with unit_of_work() as session:
        first = [
            i
            for i in await claim_due(session, conversation_id=conversation_id)
            if i.conversation_id == conversation_id
        ]
    assert [i.message_id for i in first] == ids[:1]  # the second waits for the first
    async with unit_of_work() as session:
        again = [
            i
            for i in await claim_due(session, conversation_id=conversation_id)
            if i.conversation_id == conversation_id
        ]
        assert again == []  # leased
        item = await session.get(OutboxItem, first[0].id)
        assert item is not None
        item.locked_until = utcnow() - dt.timedelta(seconds=1)  # the worker died
    async with unit_of_work() as session:
        retaken = [
            i
            for i in await claim_due(session, conversation_id=conversation_id)
            if i.conversation_id == conversation_id
        ]
        assert [i.message_id for i in retaken] == ids[:1] and retaken[0].attempts == 2
        await do_mark_sent(session, item_id=retaken[0].id, result=SendResult("SMx1"))
    async with unit_of_work() as session:
        second = [
            i
            for i in await claim_due(session, conversation_id=conversation_id)
            if i.conversation_id == conversation_id
        ]
        assert [i.message_id for i in second] == ids[1:]
        assert await do_mark_failed(session, item_id=second[0].id, error="boom", retryable=True)
        failed_for_good = await do_mark_failed(
            session, item_id=second[0].id, error="21211 invalid To", retryable=False
        )
    assert failed_for_good is False
    async with unit_of_work() as session:
        message = await session.get(Message, ids[1])
        delivery = await session.scalar(
            sa.select(TimelineEntry).where(
                TimelineEntry.message_id == ids[1], TimelineEntry.kind == EntryKind.DELIVERY
            )
        )
        item = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == ids[1]))
    assert message is not None and message.delivery_status is DeliveryStatus.FAILED
    assert delivery is not None and "21211" in delivery.summary
    assert item is not None and item.state is OutboxState.FAILED


async def test_delivery_status_never_goes_backwards() -> None:
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "oi", "SMstatus1")
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        message = await do_queue_outbound(
            session, conversation=conversation, outbound=Outbound(text="olá"), actor=Actor.bot()
        )
        message.provider_id = "SMout-status"
    sequence = [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.SENT,
        DeliveryStatus.READ,
        DeliveryStatus.DELIVERED,
    ]
    seen = []
    for status in sequence:
        async with unit_of_work() as session:
            updated = await do_update_delivery_status(
                session, channel=Channel.WHATSAPP, provider_id="SMout-status", status=status
            )
            assert updated is not None
            seen.append(updated.delivery_status)
    assert seen == [
        DeliveryStatus.DELIVERED,
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.READ,
    ]


async def test_concurrent_claims_lease_each_row_once() -> None:
    """Several workers claiming at once (one UPDATE over rows chosen FOR UPDATE SKIP LOCKED):
    every due row of these conversations is leased by exactly one of them, attempts counted
    once, the rows of one conversation still in order."""
    conversations = []
    for n in range(6):
        _, phone = await case_with_phone()
        _, conversation_id, _ = await receive(phone, "oi", f"SMclaim{n}{uuid.uuid4().hex[:8]}")
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await do_queue_outbound(
                session, conversation=conversation, outbound=Outbound(text="r"), actor=Actor.bot()
            )
        conversations.append(conversation_id)

    async def claim(conversation_id: int) -> list[int]:
        async with unit_of_work() as session:
            return [i.id for i in await claim_due(session, conversation_id=conversation_id)]

    # Each conversation claimed by three workers at once.
    results = await asyncio.gather(*(claim(c) for c in conversations for _ in range(3)))
    claimed = [item for found in results for item in found]
    assert len(claimed) == len(set(claimed)) == len(conversations)
    async with unit_of_work() as session:
        rows = list(
            await session.scalars(
                sa.select(OutboxItem).where(OutboxItem.conversation_id.in_(conversations))
            )
        )
    assert {row.id for row in rows} == set(claimed)
    assert {(row.state, row.attempts) for row in rows} == {(OutboxState.IN_FLIGHT, 1)}


async def test_a_turn_claims_its_reply_in_its_own_transaction_and_a_crash_leaves_it_leased() -> (
    None
):
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "quanto é?", "SMclaim1")
    seen: list[tuple[str, str, OutboxState, int]] = []

    async def crash_while_sending(items: Sequence[tuple[int, Envelope]]) -> None:
        # What the deliverer gets is already committed: another session sees it leased.
        async with unit_of_work() as session:
            for item_id, envelope in items:
                row = await session.get(OutboxItem, item_id)
                assert row is not None
                seen.append((envelope.text, envelope.to, row.state, row.attempts))
        raise RuntimeError("the process died before the provider took it")

    with pytest.raises(RuntimeError):
        await process_conversation(
            conversation_id, gateway=gateway_to_nowhere(), deliver=crash_while_sending
        )
    assert seen == [(ENGINE_DOWN_REPLY, phone, OutboxState.IN_FLIGHT, 1)]
    async with unit_of_work() as session:
        assert await claim_due(session, conversation_id=conversation_id) == []  # still leased
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.conversation_id == conversation_id)
        )
        assert item is not None
        item.locked_until = utcnow() - dt.timedelta(seconds=1)  # the lease ran out
        handled = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id, Message.handled_at.is_not(None))
        )
    assert handled == 1  # the turn's effects were committed before the send
    async with unit_of_work() as session:
        retaken = await claim_due(session, conversation_id=conversation_id)
        assert [(i.id, i.attempts) for i in retaken] == [(item.id, 2)]
    # The next message's turn runs: the conversation's lease was given back.
    await receive(phone, "alo?", "SMclaim2")
    delivered: list[int] = []

    async def record(items: Sequence[tuple[int, Envelope]]) -> None:
        delivered.extend(item_id for item_id, _ in items)

    assert await process_conversation(conversation_id, gateway=None, deliver=record) == 1
    assert item.id not in delivered  # leased by the retake above: never claimed twice


async def test_each_turns_reply_is_sent_before_the_next_turn_runs() -> None:
    """Claimed by a turn's finish, its replies go out before the conversation's next turn (their
    lease is never held across another turn's wait for Rasa)."""
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "quanto é?", "SMturnseq1")
    await receive(phone, "alo?", "SMturnseq2")
    handled_when_sent: list[int] = []

    async def count_handled(items: Sequence[tuple[int, Envelope]]) -> None:
        async with unit_of_work() as session:
            handled = await session.scalar(
                sa.select(sa.func.count())
                .select_from(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == "inbound",
                    Message.handled_at.is_not(None),
                )
            )
        handled_when_sent.extend(handled or 0 for _ in items)

    assert (
        await process_conversation(
            conversation_id, gateway=gateway_to_nowhere(), deliver=count_handled
        )
        == 2
    )
    # The first turn's reply (Rasa is down: the hand-off notice) left while the second waited;
    # the second turn (already handed off) queued nothing.
    assert handled_when_sent == [1]
    assert await outbound_texts(conversation_id) == [ENGINE_DOWN_REPLY]
