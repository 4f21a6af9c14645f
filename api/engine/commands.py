"""Commands for Rasa's tracker (pause while a person holds the conversation, resume when it is
handed back), delivered durably.

The command is a row written in the transaction that changed the holder; right after commit
this process tries to deliver it, and the worker retries with backoff until Rasa has it. An
earlier undelivered command of a conversation holds back the later ones, so Rasa sees pause and
resume in the order the analysts gave them, however long it was down. Claims are leased
(`SKIP LOCKED` on PostgreSQL), so two workers never send one command at the same time.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from api.conversations.models import Conversation
from api.conversations.service import sender_id_for
from api.db import on_commit, unit_of_work, utcnow
from api.engine.client import EngineUnavailable, RasaGateway, get_gateway
from api.engine.models import EngineCommand, EngineCommandKind, EngineCommandState

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
    conversation_id = conversation.id

    async def deliver_now() -> None:
        try:
            await deliver_engine_commands(get_gateway(), conversation_id=conversation_id)
        except Exception:  # the worker retries whatever is left
            log.exception("engine commands of conversation %s left to the worker", conversation_id)

    on_commit(session, deliver_now)
    return command


async def _claim(
    session: AsyncSession, *, limit: int, conversation_id: int | None, now: bool
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
    only = [] if conversation_id is None else [EngineCommand.conversation_id == conversation_id]
    query = (
        sa.select(EngineCommand)
        .where(due, ~blocked_by_earlier, *only)
        .order_by(EngineCommand.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=EngineCommand)
    )
    commands = list((await session.scalars(query)).all())
    for command in commands:
        command.state = S.IN_FLIGHT
        command.locked_until = at + LEASE
        command.attempts += 1
    await session.flush()
    return commands


async def _settle(
    maker: async_sessionmaker[AsyncSession] | None, command_id: int, error: str | None
) -> None:
    async with unit_of_work(maker) as session:
        command = await session.get(EngineCommand, command_id)
        if command is None:
            return
        command.locked_until = None
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
    limit: int = 20,
    now: bool = False,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> int:
    """Send due commands to Rasa, oldest first per conversation; returns how many Rasa took.
    `now` sends those still waiting out a backoff too. Without a gateway (no RASA_URL) nothing
    is sent and the commands wait."""
    if gateway is None:
        return 0
    delivered = 0
    while True:
        async with unit_of_work(maker) as session:
            claimed = [
                (c.id, c.sender_id, c.kind)
                for c in await _claim(
                    session, limit=limit, conversation_id=conversation_id, now=now
                )
            ]
        if not claimed:
            return delivered
        progressed = False
        for command_id, sender_id, kind in claimed:
            try:
                await gateway.send_events(sender=sender_id, events=_EVENTS[kind])
            except EngineUnavailable as exc:
                log.warning("engine command %s (%s) not delivered: %s", command_id, kind, exc)
                await _settle(maker, command_id, exc.message)
                continue
            await _settle(maker, command_id, None)
            delivered += 1
            progressed = True
        if not progressed:
            return delivered
