"""Follow-ups: a date an analyst sets to look at a conversation again, and the data behind
"ignored for N days" (the alerts built on it come later). Channel-neutral: the caller says
which channel it asks about (today the e-mail queue does)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.conversations.models import Channel, Conversation, DeliveryStatus, Direction, Message
from api.db import utcnow
from api.errors import ValidationFailed
from api.events import about, emit
from api.events.kinds import FollowUpSet
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

_NOT_SENT = (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.PENDING)


@dataclass(frozen=True)
class IgnoredConversation:
    conversation_id: int
    case_id: int | None
    address: str
    last_outbound_at: dt.datetime
    last_reply_at: dt.datetime | None
    follow_up_at: dt.datetime | None
    days_waiting: int


async def do_set_follow_up(
    session: AsyncSession,
    *,
    conversation: Conversation,
    when: dt.datetime | None,
    actor: Actor,
    note: str | None = None,
) -> Conversation:
    """Set (or clear, with None) the date to look at a conversation again."""
    if when is not None and when.tzinfo is None:
        raise ValidationFailed("Informe a data de acompanhamento com fuso horário.")
    conversation.follow_up_at = when
    summary = (
        f"Acompanhamento marcado para {when.astimezone(dt.UTC):%d/%m/%Y %H:%M} UTC"
        if when is not None
        else "Acompanhamento desmarcado"
    )
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        summary=summary + (f": {note.strip()}" if note and note.strip() else "."),
        data={"follow_up_at": when.isoformat() if when else None},
    )
    emit(
        session,
        FollowUpSet(**about(conversation=conversation, actor=actor), follow_up_at=when),
    )
    return conversation


async def get_ignored_conversations(
    session: AsyncSession,
    *,
    channel: Channel,
    days: int,
    now: dt.datetime | None = None,
    limit: int = 200,
) -> Sequence[IgnoredConversation]:
    """Open conversations of `channel` whose last message we sent (and that left us) is older than
    `days` days, with no reply from the other side since. Auto-replies and bounces are not
    replies: an out-of-office does not stop the clock."""
    now = now or utcnow()
    cutoff = now - dt.timedelta(days=days)
    last_out = (
        sa.select(
            Message.conversation_id.label("conversation_id"),
            sa.func.max(Message.created_at).label("at"),
        )
        .where(
            Message.channel == channel,
            Message.direction == Direction.OUTBOUND,
            Message.delivery_status.not_in(_NOT_SENT),
        )
        .group_by(Message.conversation_id)
        .subquery()
    )
    replied = Message.meta["answerable"].as_boolean().is_not(False)
    last_in = (
        sa.select(
            Message.conversation_id.label("conversation_id"),
            sa.func.max(Message.created_at).label("at"),
        )
        .where(
            Message.channel == channel,
            Message.direction == Direction.INBOUND,
            sa.or_(Message.meta.is_(None), replied),
        )
        .group_by(Message.conversation_id)
        .subquery()
    )
    query = (
        sa.select(Conversation, last_out.c.at, last_in.c.at)
        .join(last_out, last_out.c.conversation_id == Conversation.id)
        .outerjoin(last_in, last_in.c.conversation_id == Conversation.id)
        .where(
            Conversation.channel == channel,
            Conversation.closed_at.is_(None),
            last_out.c.at < cutoff,
            sa.or_(last_in.c.at.is_(None), last_in.c.at < last_out.c.at),
        )
        .order_by(last_out.c.at)
        .limit(limit)
    )
    found: list[IgnoredConversation] = []
    for conversation, sent_at, reply_at in (await session.execute(query)).all():
        sent = _aware(sent_at)
        found.append(
            IgnoredConversation(
                conversation_id=conversation.id,
                case_id=conversation.case_id,
                address=conversation.address,
                last_outbound_at=sent,
                last_reply_at=_aware(reply_at) if reply_at is not None else None,
                follow_up_at=conversation.follow_up_at,
                days_waiting=(now - sent).days,
            )
        )
    return found


async def get_due_follow_ups(
    session: AsyncSession,
    *,
    channel: Channel,
    now: dt.datetime | None = None,
    limit: int = 200,
) -> Sequence[Conversation]:
    """Open conversations of `channel` whose follow-up date has come."""
    query = (
        sa.select(Conversation)
        .where(
            Conversation.channel == channel,
            Conversation.closed_at.is_(None),
            Conversation.follow_up_at.is_not(None),
            Conversation.follow_up_at <= (now or utcnow()),
        )
        .order_by(Conversation.follow_up_at)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


def _aware(value: dt.datetime | str) -> dt.datetime:
    """Aggregates bypass the column type on SQLite: max() comes back as naive UTC (or text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
