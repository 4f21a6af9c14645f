"""Receiving a message moves the conversation's last_inbound_at (the WhatsApp 24-hour window,
the "e-mail ignored" and "infringer replied" rules read it): forward only, and a replay moves
nothing. On PostgreSQL the insert and the move are one statement. Queueing a reply moves
last_outbound_at and writes its outbox row (Core statements, not the ORM's flush)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import sqlalchemy as sa

from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import AuthorKind, Channel, Conversation
from api.conversations.outbound import OutboundMessage, do_queue_message
from api.conversations.scheduling import turn_scheduler
from api.db import unit_of_work, utcnow
from api.outbox.models import OutboxItem, OutboxState
from api.timeline.service import Actor
from tests.helpers.turns import RecordingScheduler

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(10_000_000, 99_999_999, 7937))


def _inbound(phone: str, at: dt.datetime, sid: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=sid or f"SMseen{uuid.uuid4().hex}",
        sender=f"whatsapp:{phone}",
        text="oi",
        received_at=at,
        raw={"Body": "oi"},
        answerable=False,  # no turn: this is about the stored times only
    )


async def _receive(message: InboundMessage) -> tuple[int, bool, dt.datetime | None]:
    """Receive in its own transaction; the conversation, whether the message was new, and
    the last_inbound_at the session's conversation object shows."""
    with turn_scheduler(RecordingScheduler()):
        async with unit_of_work() as session:
            received = await do_receive_message(session, message)
            shown = received.conversation.last_inbound_at
            return received.conversation.id, received.created, shown


async def _stored(conversation_id: int) -> dt.datetime | None:
    async with unit_of_work() as session:
        return await session.scalar(
            sa.select(Conversation.last_inbound_at).where(Conversation.id == conversation_id)
        )


def _same(a: dt.datetime | None, b: dt.datetime) -> bool:
    assert a is not None
    return abs((a.replace(tzinfo=None) - b.replace(tzinfo=None)).total_seconds()) < 0.001


async def test_last_inbound_at_moves_forward_only_and_a_replay_moves_nothing() -> None:
    phone = f"+55879{next(_seq):08d}"
    now = utcnow()
    first = now - dt.timedelta(hours=3)
    conversation_id, created, shown = await _receive(_inbound(phone, first, sid="SMseen-a" + phone))
    assert created and _same(shown, first) and _same(await _stored(conversation_id), first)

    later = now - dt.timedelta(hours=1)
    _, created, shown = await _receive(_inbound(phone, later))
    assert created and _same(shown, later) and _same(await _stored(conversation_id), later)

    # A message that arrives late but was sent earlier does not move the window back.
    _, created, shown = await _receive(_inbound(phone, now - dt.timedelta(hours=2)))
    assert created and _same(shown, later) and _same(await _stored(conversation_id), later)

    # A replay of the first message, re-sent with a newer time, changes nothing.
    _, created, _ = await _receive(_inbound(phone, now, sid="SMseen-a" + phone))
    assert not created
    assert _same(await _stored(conversation_id), later)


async def test_queueing_a_reply_moves_last_outbound_at_and_writes_its_outbox_row() -> None:
    phone = f"+55879{next(_seq):08d}"
    conversation_id, _, _ = await _receive(_inbound(phone, utcnow()))
    before = utcnow()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.last_outbound_at is None
        queued = await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(author=AuthorKind.BOT, texts=("Olá! Como posso ajudar?",)),
            actor=Actor.bot(),
        )
        shown = conversation.last_outbound_at
        assert shown is not None and shown >= before
        assert conversation not in session.dirty  # written already, nothing left to flush
    async with unit_of_work() as session:
        stored = await session.get(Conversation, conversation_id)
        assert stored is not None and _same(stored.last_outbound_at, shown)
        rows = (
            await session.execute(
                sa.select(OutboxItem.message_id, OutboxItem.state, OutboxItem.attempts).where(
                    OutboxItem.conversation_id == conversation_id
                )
            )
        ).all()
        assert rows == [(queued[0].id, OutboxState.PENDING, 0)]  # one row, due as added rows were
