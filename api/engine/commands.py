"""Commands for Rasa's tracker (pause while a person holds the conversation, resume when it is
handed back), delivered durably.

The handoff service knows nothing of Rasa: it emits handoff events. The durable consumer
`engine-commands` turns each into a command row (in the transaction that moves its cursor, so
an event becomes exactly one command), inline right after the analyst's commit and in the
worker otherwise; the row is sent after that commit, and the worker retries it with backoff
until Rasa has it. An earlier undelivered command of a conversation holds back the later ones,
so Rasa sees pause and resume in the order the analysts gave them, however long it was down.
Claims are leased (`SKIP LOCKED` on PostgreSQL): two workers never send one command at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from api.conversations.models import Conversation
from api.conversations.service import sender_id_for
from api.db import on_commit, unit_of_work, utcnow
from api.engine.client import EngineUnavailable, RasaGateway, get_gateway
from api.engine.models import EngineCommand, EngineCommandKind, EngineCommandState
from api.events import EventActorKind, EventRecord
from api.events.consumers import Consumer, drain_shared, register_consumer
from api.events.models import EventConsumer, StoredEvent

log = logging.getLogger(__name__)
LEASE = dt.timedelta(seconds=60)
MAX_BACKOFF_SECONDS = 5 * 60

S = EngineCommandState

# A conversation handed back to the bot starts its negotiation afresh: the offer slots of the
# last attempt are cleared with the resume.
_EVENTS: dict[EngineCommandKind, list[dict[str, Any]]] = {
    EngineCommandKind.PAUSE: [{"event": "pause"}],
    EngineCommandKind.RESUME: [
        {"event": "slot", "name": "offer_amount", "value": None},
        {"event": "slot", "name": "offer_installments", "value": None},
        {"event": "resume"},
    ],
}


def backoff_seconds(attempt: int) -> float:
    """Up to 2, 4, 8 … seconds with jitter, capped at five minutes."""
    return random.uniform(0.5, min(MAX_BACKOFF_SECONDS, 2.0**attempt))


async def do_queue_engine_command(
    session: AsyncSession, *, conversation: Conversation, kind: EngineCommandKind
) -> EngineCommand:
    """Record a command for Rasa in the current transaction; it is sent after commit."""
    command = EngineCommand(
        conversation_id=conversation.id,
        sender_id=sender_id_for(conversation),
        kind=kind,
        state=S.PENDING,
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(command)
    await session.flush()
    owed: set[int] | None = session.info.get(_OWED)
    if owed is None:
        owed = session.info[_OWED] = set()

        async def deliver_now() -> None:
            try:
                await deliver_engine_commands(get_gateway(), conversation_ids=sorted(owed))
            except Exception:  # the worker retries whatever is left
                log.exception("engine commands left to the worker")

        on_commit(session, deliver_now)
    owed.add(conversation.id)
    return command


_OWED = "engine_commands_owed"


async def _claim(
    session: AsyncSession, *, limit: int, conversation_ids: Sequence[int] | None, now: bool
) -> list[EngineCommand]:
    at = utcnow()
    earlier = aliased(EngineCommand)
    blocked_by_earlier = (
        sa.select(earlier.id)
        .where(
            earlier.conversation_id == EngineCommand.conversation_id,
            earlier.id < EngineCommand.id,
            earlier.state.in_([S.PENDING, S.IN_FLIGHT]),
        )
        .exists()
    )
    due = sa.or_(
        sa.and_(
            EngineCommand.state == S.PENDING,
            sa.true() if now else EngineCommand.next_attempt_at <= at,
        ),
        sa.and_(EngineCommand.state == S.IN_FLIGHT, EngineCommand.locked_until < at),
    )
    only = [] if conversation_ids is None else [EngineCommand.conversation_id.in_(conversation_ids)]
    chosen = (
        sa.select(EngineCommand.id)
        .where(due, ~blocked_by_earlier, *only)
        .order_by(EngineCommand.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=EngineCommand)
    )
    # One statement, as the outbox claims: lease the chosen rows and return them (no load, then
    # a flush of each row).
    claimed = await session.scalars(
        sa.update(EngineCommand)
        .where(EngineCommand.id.in_(chosen.scalar_subquery()))
        .values(state=S.IN_FLIGHT, locked_until=at + LEASE, attempts=EngineCommand.attempts + 1)
        .returning(EngineCommand)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return sorted(claimed.all(), key=lambda command: command.id)


async def _settle(
    maker: async_sessionmaker[AsyncSession] | None,
    command_id: int,
    error: str | None,
    *,
    attempted: bool = True,
) -> None:
    async with unit_of_work(maker) as session:
        command = await session.get(EngineCommand, command_id)
        if command is None:
            return
        command.locked_until = None
        if not attempted:  # claimed, then left untried: Rasa was already found down
            command.state = S.PENDING
            command.attempts -= 1
            return
        if error is None:
            command.state = S.DONE
            command.done_at = utcnow()
            return
        command.state = S.PENDING
        command.last_error = error[:500]
        delay = backoff_seconds(command.attempts)
        command.next_attempt_at = utcnow() + dt.timedelta(seconds=delay)


async def deliver_engine_commands(
    gateway: RasaGateway | None,
    *,
    conversation_id: int | None = None,
    conversation_ids: Sequence[int] | None = None,
    limit: int = 20,
    now: bool = False,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> int:
    """Send due commands to Rasa, oldest first per conversation; returns how many Rasa took.
    `now` sends those still waiting out a backoff too. A failure ends the pass (Rasa is down:
    the rest wait for the next one). Without a gateway (no RASA_URL) nothing is sent."""
    if gateway is None:
        return 0
    if conversation_id is not None:
        conversation_ids = [conversation_id]
    delivered = 0
    while True:
        async with unit_of_work(maker) as session:
            claimed = [
                (c.id, c.sender_id, c.kind)
                for c in await _claim(
                    session, limit=limit, conversation_ids=conversation_ids, now=now
                )
            ]
        if not claimed:
            return delivered
        for position, (command_id, sender_id, kind) in enumerate(claimed):
            try:
                await gateway.send_events(sender=sender_id, events=_EVENTS[kind])
            except EngineUnavailable as exc:
                log.warning("engine command %s (%s) not delivered: %s", command_id, kind, exc)
                await _settle(maker, command_id, exc.message)
                for untried, _, _ in claimed[position + 1 :]:
                    await _settle(maker, untried, None, attempted=False)
                return delivered
            await _settle(maker, command_id, None)
            delivered += 1


async def do_prune_engine_commands(session: AsyncSession, *, older_than: dt.timedelta) -> int:
    """Delete delivered commands older than `older_than` (nothing reads them again)."""
    result = await session.execute(
        sa.delete(EngineCommand).where(
            EngineCommand.state == S.DONE, EngineCommand.done_at < utcnow() - older_than
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def catch_up_owed(session: AsyncSession, *, conversation_id: int) -> bool:
    """Whether `do_catch_up` has anything to do for this conversation before its turn: a
    command not yet delivered, or a handoff event of the conversation the consumer has not yet
    turned into one (or a consumer that never ran). One query; nearly always False, which spares
    the turn a consumer pass and a claim (two transactions)."""
    return bool(await session.scalar(sa.select(catch_up_owed_clause(conversation_id))))


def catch_up_owed_clause(
    conversation_id: int | sa.BindParameter[int],
) -> sa.ColumnElement[bool]:
    """`catch_up_owed` as a column, for a query that reads the turn anyway (api.engine.turns,
    which passes a bound parameter to build its query once)."""
    undelivered = (
        sa.select(EngineCommand.id)
        .where(
            EngineCommand.conversation_id == conversation_id,
            EngineCommand.state.in_([S.PENDING, S.IN_FLIGHT]),
        )
        .exists()
    )
    cursor = sa.select(EventConsumer).where(EventConsumer.name == ENGINE_COMMANDS.name)
    position = sa.tuple_(
        cursor.with_only_columns(EventConsumer.last_tx_id).scalar_subquery(),
        cursor.with_only_columns(EventConsumer.last_event_id).scalar_subquery(),
    )
    unconsumed = (
        sa.select(StoredEvent.id)
        .where(
            StoredEvent.conversation_id == conversation_id,
            StoredEvent.kind.in_(sorted(ENGINE_COMMANDS.kinds or ())),
            sa.tuple_(StoredEvent.tx_id, StoredEvent.id) > position,
        )
        .exists()
    )
    return sa.or_(undelivered, unconsumed, ~cursor.exists())


async def do_catch_up(gateway: RasaGateway | None, *, conversation_id: int) -> int:
    """Before a turn: turn the handoff events not yet consumed into commands, and send what
    this conversation owes Rasa, backoff or not (Rasa is being called anyway)."""
    if gateway is None:
        return 0
    # One pass shared by the turns that start meanwhile (it usually finds nothing: the consumer
    # also runs inline after each handoff commit).
    await drain_shared(ENGINE_COMMANDS)
    return await deliver_engine_commands(gateway, conversation_id=conversation_id, now=True)


# The consumer of handoff events ------------------------------------------------------------

_COMMAND_OF = {
    "handoff.claimed": EngineCommandKind.PAUSE,
    "handoff.released": EngineCommandKind.RESUME,
    "handoff.resolved": EngineCommandKind.RESUME,
}


async def handle_handoff_event(session: AsyncSession, record: EventRecord) -> None:
    """Claim pauses Rasa; release and resolve resume it; a handoff an analyst requested pauses
    it (one the bot or the system requested leaves Rasa as it is, as before)."""
    event = record.event
    kind = _COMMAND_OF.get(record.kind)
    if record.kind == "handoff.requested" and event.actor_kind is EventActorKind.ANALYST:
        kind = EngineCommandKind.PAUSE
    if kind is None or event.conversation_id is None:
        return
    conversation = await session.get(Conversation, event.conversation_id)
    if conversation is not None:
        await do_queue_engine_command(session, conversation=conversation, kind=kind)


ENGINE_COMMANDS = register_consumer(
    Consumer(
        name="engine-commands",
        handle=handle_handoff_event,
        kinds=frozenset({"handoff.requested", *_COMMAND_OF}),
        inline=True,
    )
)
