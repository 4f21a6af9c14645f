"""Rebuild the rollups from the whole event stream (`tratativa report rebuild`): after a change
of the business calendar (business-hour figures), a change of the definitions, or on a database
whose events predate the consumer.

One transaction: it locks the consumer's cursor (the worker's run of the consumer waits, then
finds nothing to do), empties the rollups, folds every committed event in memory with the same
Folder the consumer uses, writes the rows in bulk and moves the cursor to the last event read.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.conversations.models import Conversation
from api.db import utcnow
from api.events.consumers import read_batch
from api.events.models import EventConsumer
from api.metrics.consumer import NAME, case_infos, provider_column
from api.metrics.fold import FOLDED_KINDS, CaseInfo, Ev, Folder
from api.metrics.models import (
    MetricCase,
    MetricCaseChannel,
    MetricConversation,
    MetricEvent,
    MetricInterval,
    MetricOutbound,
)
from api.operations.calendar import load_calendar

ROLLUPS: tuple[type[Any], ...] = (
    MetricConversation,
    MetricCase,
    MetricCaseChannel,
    MetricOutbound,
    MetricInterval,
    MetricEvent,
)
READ_CHUNK = 20_000
WRITE_CHUNK = 5_000


class MemoryStore:
    """Every row in dictionaries; the live tables read once up front."""

    def __init__(self, cases: dict[int, CaseInfo], providers: dict[int, str]) -> None:
        self.cases = cases
        self.providers = providers
        self.conversations: dict[int, MetricConversation] = {}
        self.case_rows: dict[int, MetricCase] = {}
        self.case_channels: dict[tuple[int, str], MetricCaseChannel] = {}
        self.outbound: dict[int, MetricOutbound] = {}
        self.intervals: list[MetricInterval] = []
        self.events: list[MetricEvent] = []

    async def case_info(self, case_id: int) -> CaseInfo | None:
        return self.cases.get(case_id)

    async def provider_of(self, conversation_id: int) -> str | None:
        return self.providers.get(conversation_id)

    async def get_conversation(self, conversation_id: int) -> MetricConversation | None:
        return self.conversations.get(conversation_id)

    async def get_case(self, case_id: int) -> MetricCase | None:
        return self.case_rows.get(case_id)

    async def get_case_channel(self, case_id: int, channel: str) -> MetricCaseChannel | None:
        return self.case_channels.get((case_id, channel))

    async def get_outbound(self, message_id: int) -> MetricOutbound | None:
        return self.outbound.get(message_id)

    def add(self, row: Any) -> None:
        if isinstance(row, MetricConversation):
            self.conversations[row.conversation_id] = row
        elif isinstance(row, MetricCase):
            self.case_rows[row.case_id] = row
        elif isinstance(row, MetricCaseChannel):
            self.case_channels[(row.case_id, row.channel)] = row
        elif isinstance(row, MetricOutbound):
            self.outbound[row.message_id] = row
        elif isinstance(row, MetricInterval):
            self.intervals.append(row)
        elif isinstance(row, MetricEvent):
            self.events.append(row)
        else:  # pragma: no cover - the fold adds only rollup rows
            raise TypeError(type(row))

    def tables(self) -> Iterable[tuple[type[Any], Iterable[Any]]]:
        yield MetricConversation, self.conversations.values()
        yield MetricCase, self.case_rows.values()
        yield MetricCaseChannel, self.case_channels.values()
        yield MetricOutbound, self.outbound.values()
        yield MetricInterval, self.intervals
        yield MetricEvent, self.events


@dataclass(frozen=True)
class RebuildResult:
    events: int
    rows: dict[str, int]
    seconds: float


def _as_dict(model: type[Any], row: Any) -> dict[str, Any]:
    columns = model.__table__.columns
    values = {c.key: getattr(row, c.key) for c in columns}
    if model is MetricInterval:
        values.pop("id")
    return values


async def _lock_cursor(session: AsyncSession) -> EventConsumer:
    cursor = await session.scalar(
        sa.select(EventConsumer).where(EventConsumer.name == NAME).with_for_update()
    )
    if cursor is None:
        cursor = EventConsumer(name=NAME, last_tx_id=0, last_event_id=0, updated_at=utcnow())
        session.add(cursor)
        await session.flush()
    return cursor


async def _empty(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        names = ", ".join(model.__tablename__ for model in ROLLUPS)
        await session.execute(sa.text(f"TRUNCATE {names}"))
    else:
        for model in ROLLUPS:
            await session.execute(sa.delete(model))


async def do_rebuild(session: AsyncSession) -> RebuildResult:
    """Recompute every rollup from the events, in the caller's transaction."""
    started = time.perf_counter()
    cursor = await _lock_cursor(session)
    await _empty(session)
    providers: dict[int, str] = {}
    column = provider_column()
    if column is not None:
        rows = await session.execute(sa.select(Conversation.id, column).where(column.is_not(None)))
        providers = {int(r[0]): str(r[1]) for r in rows}
    store = MemoryStore(await case_infos(session), providers)
    folder = Folder(store, await load_calendar(session))
    position = (0, 0)
    total = 0
    while True:
        batch = await read_batch(session, after=position, limit=READ_CHUNK, kinds=FOLDED_KINDS)
        for row in batch:
            await folder.apply(
                Ev(
                    id=row.id,
                    kind=row.kind,
                    case_id=row.case_id,
                    conversation_id=row.conversation_id,
                    channel=row.channel,
                    actor_kind=row.actor_kind,
                    actor_id=row.actor_id,
                    occurred_at=row.occurred_at,
                    payload=row.payload or {},
                )
            )
        total += len(batch)
        if batch:
            position = (batch[-1].tx_id, batch[-1].id)
            session.expunge_all()
        if len(batch) < READ_CHUNK:
            break
    counts: dict[str, int] = {}
    for model, rows_of in store.tables():
        values = [_as_dict(model, row) for row in rows_of]
        for start in range(0, len(values), WRITE_CHUNK):
            await session.execute(sa.insert(model), values[start : start + WRITE_CHUNK])
        counts[model.__tablename__] = len(values)
    cursor = await _lock_cursor(session)
    if total:
        cursor.last_tx_id, cursor.last_event_id = position
    cursor.updated_at = utcnow()
    return RebuildResult(events=total, rows=counts, seconds=time.perf_counter() - started)
