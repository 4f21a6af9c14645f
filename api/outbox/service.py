"""Claiming due outbox rows (safely across workers) and recording what the provider said."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.sql.dml import ReturningUpdate

from api.config import get_settings
from api.conversations.models import Channel, DeliveryStatus, Message
from api.db import utcnow
from api.events import emit
from api.events.kinds import MessageFailed
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.senders import Envelope, SendResult
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

MAX_BACKOFF_SECONDS = 15 * 60


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: up to 2, 4, 8 … seconds, capped at 15 minutes."""
    return random.uniform(0.5, min(MAX_BACKOFF_SECONDS, 2.0**attempt))


# The DML below is Core on the tables: the session still autoflushes before it, and it skips the
# ORM's per-execution copy of the statement (which made SQLAlchemy compute the cache key again
# each time). The claim stays an ORM statement: it returns the rows as objects.
_OUTBOX = cast(sa.Table, OutboxItem.__table__)
_MESSAGES = cast(sa.Table, Message.__table__)

# The statements run for every claim and every message sent, built once (building them cost
# more CPU than running them): each call binds its values.


_UNSENT_STATES = (OutboxState.PENDING, OutboxState.IN_FLIGHT)


@functools.cache
def _claim_statement(one_conversation: bool) -> ReturningUpdate[OutboxItem]:
    """Lease up to `p_limit` due rows (of conversation `p_conversation_id` when
    `one_conversation`) until `p_locked_until` and return them; `p_now` decides what is due."""
    earlier = aliased(OutboxItem)
    blocked_by_earlier = (
        sa.select(earlier.id)
        .where(
            earlier.conversation_id == OutboxItem.conversation_id,
            earlier.id < OutboxItem.id,
            # Bound values, not an expanding list: no rewrite of the SQL at every claim.
            earlier.state.in_([sa.literal(state, earlier.state.type) for state in _UNSENT_STATES]),
        )
        .exists()
    )
    now = sa.bindparam("p_now", type_=OutboxItem.next_attempt_at.type)
    due = sa.or_(
        sa.and_(OutboxItem.state == OutboxState.PENDING, OutboxItem.next_attempt_at <= now),
        sa.and_(OutboxItem.state == OutboxState.IN_FLIGHT, OutboxItem.locked_until < now),
    )
    only = (
        [OutboxItem.conversation_id == sa.bindparam("p_conversation_id", type_=sa.Integer)]
        if one_conversation
        else []
    )
    chosen = (
        sa.select(OutboxItem.id)
        .where(due, ~blocked_by_earlier, *only)
        .order_by(OutboxItem.id)
        .limit(sa.bindparam("p_limit", type_=sa.Integer))
        .with_for_update(skip_locked=True, of=OutboxItem)
    )
    # One statement: lease the chosen rows and return them (no load, then flush of each row).
    return (
        sa.update(OutboxItem)
        .where(OutboxItem.id.in_(chosen.scalar_subquery()))
        .values(
            state=OutboxState.IN_FLIGHT,
            locked_until=sa.bindparam("p_locked_until", type_=OutboxItem.locked_until.type),
            attempts=OutboxItem.attempts + 1,
        )
        .returning(OutboxItem)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


async def claim_due(
    session: AsyncSession, *, limit: int = 20, conversation_id: int | None = None
) -> Sequence[OutboxItem]:
    """Take due rows for this worker; an earlier unsent row of a conversation holds back the
    later ones, so order is kept. A worker that died leaves its rows to be retried at lease end."""
    now = utcnow()
    params: dict[str, object] = {
        "p_now": now,
        "p_locked_until": now + dt.timedelta(seconds=get_settings().outbox_lease_seconds),
        "p_limit": limit,
    }
    if conversation_id is not None:
        params["p_conversation_id"] = conversation_id
    claimed = await session.scalars(_claim_statement(conversation_id is not None), params)
    return sorted(claimed.all(), key=lambda item: item.id)


async def claim_envelopes(
    session: AsyncSession, *, limit: int = 20, conversation_id: int | None = None
) -> list[tuple[int, Envelope]]:
    """`claim_due`, as what the sender needs (outbox id, envelope): read inside the claiming
    transaction, so they can be sent once it commits."""
    claimed = await claim_due(session, limit=limit, conversation_id=conversation_id)
    return [(item.id, envelope_of(item)) for item in claimed]


def envelope_of(item: OutboxItem) -> Envelope:
    payload = item.payload
    return Envelope(
        message_id=item.message_id,
        conversation_id=item.conversation_id,
        channel=item.channel,
        to=str(payload["to"]),
        sender=str(payload["from"]) if payload.get("from") else None,
        text=str(payload.get("text") or ""),
        subject=payload.get("subject"),
        content_sid=payload.get("content_sid"),
        content_variables=payload.get("content_variables"),
        attachments=list(payload.get("attachments") or []),
        meta=dict(payload.get("meta") or {}),
    )


@functools.cache
def _done_statement() -> ReturningUpdate[int]:
    """The outbox row `p_item_id` is done (at `p_done_at`); returns its message's id."""
    return (
        sa.update(_OUTBOX)
        .where(_OUTBOX.c.id == sa.bindparam("p_item_id", type_=sa.Integer))
        .values(
            state=OutboxState.DONE,
            done_at=sa.bindparam("p_done_at", type_=_OUTBOX.c.done_at.type),
            locked_until=None,
        )
        .returning(_OUTBOX.c.message_id)
    )


def _forward() -> sa.ColumnElement[bool]:
    """The stored status ranks below `p_rank` (the rank of the provider's status)."""
    from api.conversations.delivery import stored_rank

    return stored_rank() < sa.bindparam("p_rank", type_=sa.Integer)


def _quiet_values() -> dict[str, Any]:
    """SET the provider's id `p_provider_id`, and status `p_status` (a str) since `p_now` when
    that is forward of the stored one."""
    forward = _forward()
    return {
        "provider_id": sa.bindparam("p_provider_id", type_=_MESSAGES.c.provider_id.type),
        "delivery_status": sa.case(
            (forward, sa.bindparam("p_status", type_=sa.String)),
            else_=_MESSAGES.c.delivery_status,
        ),
        "status_updated_at": sa.case(
            (forward, sa.bindparam("p_now", type_=_MESSAGES.c.status_updated_at.type)),
            else_=_MESSAGES.c.status_updated_at,
        ),
    }


@functools.cache
def _sent_quietly_statement() -> sa.Update:
    """Message `p_message_id` has the provider's id `p_provider_id`, and status `p_status` (a
    str) since `p_now` when that is forward of the stored one; no RETURNING (no event)."""
    return (
        sa.update(_MESSAGES)
        .where(_MESSAGES.c.id == sa.bindparam("p_message_id", type_=sa.Integer))
        .values(_quiet_values())
    )


@functools.cache
def _done_and_sent_quietly_statement() -> sa.Update:
    """`_done_statement` and `_sent_quietly_statement` as one (PostgreSQL): the message of the
    outbox row `p_item_id`, done at `p_done_at`, gets the provider's id and forward status."""
    done = _done_statement().cte("done")
    return (
        sa.update(_MESSAGES)
        .add_cte(done)
        .where(_MESSAGES.c.id == done.c.message_id)
        .values(_quiet_values())
    )


@functools.cache
def _sent_forward_statement() -> ReturningUpdate[int | None, int, Channel]:
    """Message `p_message_id`, when `p_status` is forward of its stored status, has the
    provider's id `p_provider_id` and that status since `p_now`; returns what the event needs."""
    return (
        sa.update(_MESSAGES)
        .where(_MESSAGES.c.id == sa.bindparam("p_message_id", type_=sa.Integer), _forward())
        .values(
            provider_id=sa.bindparam("p_provider_id", type_=_MESSAGES.c.provider_id.type),
            delivery_status=sa.bindparam("p_status", type_=_MESSAGES.c.delivery_status.type),
            status_updated_at=sa.bindparam("p_now", type_=_MESSAGES.c.status_updated_at.type),
        )
        .returning(_MESSAGES.c.case_id, _MESSAGES.c.conversation_id, _MESSAGES.c.channel)
    )


@functools.cache
def _provider_id_statement() -> sa.Update:
    """Message `p_message_id` has the provider's id `p_provider_id` (its status stays)."""
    return (
        sa.update(_MESSAGES)
        .where(_MESSAGES.c.id == sa.bindparam("p_message_id", type_=sa.Integer))
        .values(provider_id=sa.bindparam("p_provider_id", type_=_MESSAGES.c.provider_id.type))
    )


def _quietly_done(result: SendResult, dialect: str) -> bool:
    """Whether the row and the message are one statement with no event: the usual answer
    (queued, sending), on PostgreSQL (its UPDATE in a WITH)."""
    from api.conversations.delivery import PROGRESS

    return result.status not in PROGRESS and dialect == "postgresql"


def _quietly_done_params(item_id: int, result: SendResult) -> dict[str, Any]:
    from api.conversations.delivery import RANK

    now = utcnow()
    return {
        "p_item_id": item_id,
        "p_done_at": now,
        "p_provider_id": result.provider_id,
        "p_rank": RANK[result.status],
        "p_status": str(result.status),
        "p_now": now,
    }


async def do_mark_sent_at_once(engine: AsyncEngine, *, item_id: int, result: SendResult) -> bool:
    """`do_mark_sent` outside any session for the usual answer on PostgreSQL: its one statement
    needs no transaction of its own around it (autocommit: no BEGIN, no COMMIT, one round trip
    instead of three), as the usual status callback. False for any other answer or database:
    the caller then goes the session's way."""
    if not _quietly_done(result, engine.dialect.name):
        return False
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.execute(
            _done_and_sent_quietly_statement(), _quietly_done_params(item_id, result)
        )
    return True


async def do_mark_sent(session: AsyncSession, *, item_id: int, result: SendResult) -> None:
    """The provider took the message: the outbox row is done, the message carries the provider's
    id and moves forward to what the provider said (a status callback may already have moved it
    further: never back). Statements, not ORM loads: this runs for every message sent."""
    from api.conversations.delivery import PROGRESS, RANK, emit_delivered

    if _quietly_done(result, session.get_bind().dialect.name):
        await session.execute(
            _done_and_sent_quietly_statement(), _quietly_done_params(item_id, result)
        )
        return
    now = utcnow()
    rank = RANK[result.status]
    message_id = await session.scalar(_done_statement(), {"p_item_id": item_id, "p_done_at": now})
    if message_id is None:
        return
    if result.status not in PROGRESS:  # queued, sending: no event to emit
        await session.execute(
            _sent_quietly_statement(),
            {
                "p_message_id": message_id,
                "p_provider_id": result.provider_id,
                "p_rank": rank,
                "p_status": str(result.status),
                "p_now": now,
            },
        )
        return
    moved = (
        await session.execute(
            _sent_forward_statement(),
            {
                "p_message_id": message_id,
                "p_rank": rank,
                "p_provider_id": result.provider_id,
                "p_status": result.status,
                "p_now": now,
            },
        )
    ).first()
    if moved is None:
        await session.execute(
            _provider_id_statement(),
            {"p_message_id": message_id, "p_provider_id": result.provider_id},
        )
        return
    case_id, conversation_id, channel = moved
    emit_delivered(
        session,
        message_id=message_id,
        case_id=case_id,
        conversation_id=conversation_id,
        channel=channel,
        status=result.status,
    )


def next_attempt_delay(attempt: int, retry_after_seconds: float | None = None) -> float:
    """Seconds until the next try: our backoff, never sooner than the provider's Retry-After."""
    return max(backoff_seconds(attempt), retry_after_seconds or 0.0)


async def do_mark_failed(
    session: AsyncSession,
    *,
    item_id: int,
    error: str,
    retryable: bool,
    retry_after_seconds: float | None = None,
) -> bool:
    """Schedule a retry, or fail for good (shown on the timeline). True when it will retry."""
    item = await session.get(OutboxItem, item_id)
    if item is None:
        return False
    item.last_error = error[:500]
    item.locked_until = None
    if retryable and item.attempts < get_settings().outbox_max_attempts:
        item.state = OutboxState.PENDING
        delay = next_attempt_delay(item.attempts, retry_after_seconds)
        item.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)
        return True
    item.state = OutboxState.FAILED
    item.done_at = utcnow()
    message = await session.get(Message, item.message_id)
    if message is not None:
        message.delivery_status = DeliveryStatus.FAILED
        message.delivery_error = error[:500]
        message.status_updated_at = utcnow()
        from api.conversations.delivery import delivery_envelope

        emit(
            session,
            MessageFailed(
                **delivery_envelope(message),
                message_id=message.id,
                status=str(DeliveryStatus.FAILED),
                error=error[:500],
            ),
        )
        await create_entry(
            session,
            kind=EntryKind.DELIVERY,
            actor=Actor.system(),
            case_id=message.case_id,
            conversation_id=message.conversation_id,
            message_id=message.id,
            summary=f"Falha no envio ({'tentativas esgotadas' if retryable else 'erro permanente'}): "
            f"{error[:200]}",
            data={"error": error[:500], "attempts": item.attempts, "retryable": retryable},
        )
    return False
