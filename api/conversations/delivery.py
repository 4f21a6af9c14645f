"""Delivery status of outbound messages: provider callbacks move it forward, never backward."""

from __future__ import annotations

import datetime as dt
import functools
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningUpdate

from api.conversations.models import Channel, DeliveryStatus, Message
from api.db import utcnow
from api.events import EventActorKind, emit
from api.events.kinds import MessageDelivered, MessageFailed
from api.events.models import StoredEvent
from api.events.service import announce_committed
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

D = DeliveryStatus
RANK = {
    D.PENDING: 0,
    D.QUEUED: 1,
    D.SENDING: 2,
    D.SENT: 3,
    D.FAILED: 4,
    D.UNDELIVERED: 4,
    D.DELIVERED: 5,
    D.READ: 6,
}
FAILURES = frozenset({D.FAILED, D.UNDELIVERED})
# What the provider reports as it moves a message forward (each is a message.delivered event).
PROGRESS = frozenset({D.SENT, D.DELIVERED, D.READ})


def delivery_envelope(message: Message) -> dict[str, object]:
    """Event envelope for a provider's report on `message` (the system reports it)."""
    return {
        "case_id": message.case_id,
        "conversation_id": message.conversation_id,
        "channel": str(message.channel),
        "actor_kind": EventActorKind.SYSTEM,
    }


def stored_rank() -> sa.ColumnElement[int]:
    """RANK as SQL: the stored status's rank (-1 for one outside RANK, as in
    do_update_delivery_status)."""
    return _STORED_RANK


# On the table's column: usable in Core statements and ORM ones alike.
_MESSAGES = cast(sa.Table, Message.__table__)
_STORED_RANK: sa.ColumnElement[int] = sa.case(
    {str(status): rank for status, rank in RANK.items()},
    value=_MESSAGES.c.delivery_status,
    else_=-1,
)


# The statements of every status report, built once (building them cost more CPU than running
# them): each call binds its values.


@functools.cache
def _advance_statement() -> ReturningUpdate[int, int | None, int]:
    """Move the message `p_channel`/`p_provider_id` to `p_status` (since `p_now`) when its stored
    status ranks below `p_rank`; returns what the event needs."""
    return (
        sa.update(_MESSAGES)
        .where(
            _MESSAGES.c.channel == sa.bindparam("p_channel", type_=_MESSAGES.c.channel.type),
            _MESSAGES.c.provider_id
            == sa.bindparam("p_provider_id", type_=_MESSAGES.c.provider_id.type),
            stored_rank() < sa.bindparam("p_rank", type_=sa.Integer),
        )
        .values(
            delivery_status=sa.bindparam("p_status", type_=_MESSAGES.c.delivery_status.type),
            status_updated_at=sa.bindparam("p_now", type_=_MESSAGES.c.status_updated_at.type),
        )
        .returning(_MESSAGES.c.id, _MESSAGES.c.case_id, _MESSAGES.c.conversation_id)
    )


def _advance_params(
    channel: Channel, provider_id: str, status: DeliveryStatus, now: dt.datetime
) -> dict[str, object]:
    """`_advance_statement`'s values: move `provider_id`'s message to `status` at `now`."""
    return {
        "p_channel": channel,
        "p_provider_id": provider_id,
        "p_rank": RANK[status],
        "p_status": status,
        "p_now": now,
    }


async def do_advance_delivery(
    session: AsyncSession, *, channel: Channel, provider_id: str, status: DeliveryStatus
) -> int | None:
    """The common case of a provider's report, in one statement: move a message we know by
    `provider_id` forward to `status` (sent, delivered, read) and emit message.delivered.
    Returns the message's id; None when nothing moved (an unknown id, or a report no newer than
    what is stored): `do_update_delivery_status` then decides. The UPDATE takes the row lock and
    re-checks the rank after any concurrent report committed, so reports never move it back."""
    if status not in PROGRESS:
        return None
    row = (
        await session.execute(
            _advance_statement(), _advance_params(channel, provider_id, status, utcnow())
        )
    ).first()
    if row is None:
        return None
    message_id, case_id, conversation_id = row
    emit_delivered(
        session,
        message_id=message_id,
        case_id=case_id,
        conversation_id=conversation_id,
        channel=channel,
        status=status,
    )
    return int(message_id)


@functools.cache
def _advance_and_record_statement() -> sa.Select[int, int | None, int]:
    """PostgreSQL: `_advance_statement` and the message.delivered row it causes, in ONE
    statement (the UPDATE in a WITH, the event's INSERT reading what it returned): the row is
    what `emit` would write (`p_kind`, `p_channel_text`, `p_status_text`: the same values as
    text, for the event's columns and payload)."""
    moved = _advance_statement().cte("moved")
    events = cast(sa.Table, StoredEvent.__table__)
    now = sa.bindparam("p_now", type_=events.c.occurred_at.type)
    status_text = sa.bindparam("p_status_text", type_=sa.String)
    record = (
        sa.insert(events)
        .from_select(
            [
                "kind",
                "case_id",
                "conversation_id",
                "channel",
                "actor_kind",
                "actor_id",
                "occurred_at",
                "recorded_at",
                "payload",
            ],
            sa.select(
                sa.bindparam("p_kind", type_=sa.String),
                moved.c.case_id,
                moved.c.conversation_id,
                sa.bindparam("p_channel_text", type_=sa.String),
                sa.bindparam("p_actor_kind", type_=sa.String),
                sa.null(),
                now,
                now,
                sa.func.jsonb_build_object(
                    sa.literal_column("'message_id'"),
                    moved.c.id,
                    sa.literal_column("'status'"),
                    status_text,
                ),
            ).select_from(moved),
        )
        .cte("recorded")
    )
    return sa.select(moved.c.id, moved.c.case_id, moved.c.conversation_id).add_cte(record)


async def do_advance_delivery_at_once(
    engine: AsyncEngine, *, channel: Channel, provider_id: str, status: DeliveryStatus
) -> int | None:
    """`do_advance_delivery` outside any session, on PostgreSQL: the UPDATE and its event's row
    are one statement, which needs no transaction of its own around it (autocommit: no BEGIN,
    no COMMIT, one round trip). The common status report (sent, delivered, read of a message
    we know) costs one statement; None as in `do_advance_delivery` (and always on another
    database): the caller then goes the session's way."""
    if status not in PROGRESS or engine.dialect.name != "postgresql":
        return None
    occurred_at = utcnow()
    params = _advance_params(channel, provider_id, status, occurred_at) | {
        "p_kind": MessageDelivered.kind,
        "p_channel_text": str(channel),
        "p_actor_kind": str(EventActorKind.SYSTEM),
        "p_status_text": str(status),
    }
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        row = (await autocommit.execute(_advance_and_record_statement(), params)).first()
    if row is None:
        return None
    message_id, case_id, conversation_id = row
    event = MessageDelivered(
        case_id=case_id,
        conversation_id=conversation_id,
        channel=str(channel),
        actor_kind=EventActorKind.SYSTEM,
        occurred_at=occurred_at,
        message_id=message_id,
        status=str(status),
    )
    await announce_committed(engine, [event])
    return int(message_id)


def emit_delivered(
    session: AsyncSession,
    *,
    message_id: int,
    case_id: int | None,
    conversation_id: int,
    channel: str,
    status: DeliveryStatus,
) -> None:
    """message.delivered for a message the provider moved forward (sent, delivered, read)."""
    emit(
        session,
        MessageDelivered(
            case_id=case_id,
            conversation_id=conversation_id,
            channel=str(channel),
            actor_kind=EventActorKind.SYSTEM,
            message_id=message_id,
            status=str(status),
        ),
    )


@functools.cache
def _reported_statement() -> sa.Select[Message]:
    """The message `p_channel`/`p_provider_id`, locked."""
    return (
        sa.select(Message)
        .where(
            Message.channel == sa.bindparam("p_channel", type_=Message.channel.type),
            Message.provider_id == sa.bindparam("p_provider_id", type_=Message.provider_id.type),
        )
        .with_for_update()
    )


@functools.cache
def _unnamed_statement() -> sa.Select[Message]:
    """The message `p_message_id` of `p_channel` whose provider id is not stored yet, locked."""
    return (
        sa.select(Message)
        .where(
            Message.id == sa.bindparam("p_message_id", type_=sa.Integer),
            Message.channel == sa.bindparam("p_channel", type_=Message.channel.type),
            Message.provider_id.is_(None),
        )
        .with_for_update()
    )


async def do_update_delivery_status(
    session: AsyncSession,
    *,
    channel: Channel,
    provider_id: str,
    status: DeliveryStatus,
    error: str | None = None,
    message_id: int | None = None,
) -> Message | None:
    """Apply a provider's status report; an older report arriving late changes nothing.

    `message_id` (carried in the callback URL) finds a message whose provider id we have not
    stored yet: the provider can report before our send call has returned.
    """
    message = await session.scalar(
        _reported_statement(), {"p_channel": channel, "p_provider_id": provider_id}
    )
    if message is None and message_id is not None:
        message = await session.scalar(
            _unnamed_statement(), {"p_message_id": message_id, "p_channel": channel}
        )
        if message is not None:
            message.provider_id = provider_id
    if message is None:
        return None
    if RANK.get(status, -1) <= RANK.get(message.delivery_status, -1):
        return message
    message.delivery_status = status
    message.status_updated_at = utcnow()
    if error:
        message.delivery_error = error[:500]
    envelope = delivery_envelope(message)
    if status in FAILURES:
        emit(
            session,
            MessageFailed(**envelope, message_id=message.id, status=str(status), error=error),
        )
    elif status in PROGRESS:
        emit(session, MessageDelivered(**envelope, message_id=message.id, status=str(status)))
    if status in FAILURES:
        await create_entry(
            session,
            kind=EntryKind.DELIVERY,
            actor=Actor.system(),
            case_id=message.case_id,
            conversation_id=message.conversation_id,
            message_id=message.id,
            summary=f"Mensagem não entregue ({status}): {error or 'sem detalhe'}",
            data={"status": str(status), "error": error},
        )
    return message
