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
from api.events.consumers import _below_horizon
from api.events.models import EventConsumer, StoredEvent
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
events = StoredEvent.__table__
_EVENT_COLUMNS = (
    events.c.id,
    events.c.tx_id,
    events.c.kind,
    events.c.case_id,
    events.c.conversation_id,
    events.c.channel,
    events.c.actor_kind,
    events.c.actor_id,
    events.c.occurred_at,
    events.c.payload,
)
WRITE_CHUNK = 5_000


class Row:
    """A rollup row held in memory during a rebuild: plain attributes, far lighter than an
    ORM instance (a 1 M message database keeps about a million of them)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)


def _columns(model: type[Any]) -> tuple[str, ...]:
    return tuple(c.key for c in model.__table__.columns if c.key != "id")


class MemoryStore:
    """Rows that change while folding stay in dictionaries; intervals and counted events never
    change once written, so they are inserted as the fold goes (`write_appended`)."""

    def __init__(self, cases: dict[int, CaseInfo], providers: dict[int, str]) -> None:
        self.cases = cases
        self.providers = providers
        self.conversations: dict[int, Row] = {}
        self.case_rows: dict[int, Row] = {}
        self.case_channels: dict[tuple[int, str], Row] = {}
        self.outbound: dict[int, Row] = {}
        self.appended: dict[type[Any], list[dict[str, Any]]] = {MetricInterval: [], MetricEvent: []}
        self.written: dict[str, int] = {"metric_intervals": 0, "metric_events": 0}
        self._columns: dict[type[Any], tuple[str, ...]] = {}

    async def case_info(self, case_id: int) -> CaseInfo | None:
        return self.cases.get(case_id)

    async def provider_of(self, conversation_id: int) -> str | None:
        return self.providers.get(conversation_id)

    async def get_conversation(self, conversation_id: int) -> Any:
        return self.conversations.get(conversation_id)

    async def get_case(self, case_id: int) -> Any:
        return self.case_rows.get(case_id)

    async def get_case_channel(self, case_id: int, channel: str) -> Any:
        return self.case_channels.get((case_id, channel))

    async def get_outbound(self, message_id: int) -> Any:
        return self.outbound.get(message_id)

    def create(self, model: type[Any], **values: Any) -> Any:
        columns = self._columns.get(model)
        if columns is None:
            columns = self._columns[model] = _columns(model)
        full: dict[str, Any] = dict.fromkeys(columns)
        full.update(values)
        if model in self.appended:
            self.appended[model].append(full)
            return full
        kept = Row(full)
        if model is MetricConversation:
            self.conversations[full["conversation_id"]] = kept
        elif model is MetricCase:
            self.case_rows[full["case_id"]] = kept
        elif model is MetricCaseChannel:
            self.case_channels[(full["case_id"], full["channel"])] = kept
        elif model is MetricOutbound:
            self.outbound[full["message_id"]] = kept
        else:  # pragma: no cover - the fold creates only rollup rows
            raise TypeError(model)
        return kept

    async def write_appended(self, session: AsyncSession, *, at_least: int = 0) -> None:
        for model, rows in self.appended.items():
            if rows and len(rows) >= at_least:
                await bulk_insert(session, model, rows)
                self.written[model.__tablename__] += len(rows)
                rows.clear()

    def kept(self) -> Iterable[tuple[type[Any], Iterable[Row]]]:
        yield MetricConversation, self.conversations.values()
        yield MetricCase, self.case_rows.values()
        yield MetricCaseChannel, self.case_channels.values()
        yield MetricOutbound, self.outbound.values()


@dataclass(frozen=True)
class RebuildResult:
    events: int
    rows: dict[str, int]
    seconds: float


async def bulk_insert(session: AsyncSession, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL (asyncpg), executemany elsewhere."""
    if not rows:
        return
    columns = _columns(model)
    if session.get_bind().dialect.name == "postgresql":
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            model.__tablename__,
            records=[tuple(row[c] for c in columns) for row in rows],
            columns=list(columns),
        )
        return
    table = model.__table__
    for start in range(0, len(rows), WRITE_CHUNK):
        await session.execute(table.insert(), rows[start : start + WRITE_CHUNK])


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
        batch = (
            await session.execute(
                sa.select(*_EVENT_COLUMNS)
                .where(
                    sa.tuple_(events.c.tx_id, events.c.id) > sa.tuple_(*position),
                    # Never past a transaction still running (api/events/consumers.py).
                    _below_horizon(session),
                    events.c.kind.in_(sorted(FOLDED_KINDS)),
                )
                .order_by(events.c.tx_id, events.c.id)
                .limit(READ_CHUNK)
            )
        ).all()
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
        await store.write_appended(session, at_least=WRITE_CHUNK)
        if len(batch) < READ_CHUNK:
            break
    await store.write_appended(session)
    counts: dict[str, int] = {}
    for model, kept in store.kept():
        values = [row.__dict__ for row in kept]
        await bulk_insert(session, model, values)
        counts[model.__tablename__] = len(values)
    counts.update(store.written)
    cursor = await _lock_cursor(session)
    if total:
        cursor.last_tx_id, cursor.last_event_id = position
    cursor.updated_at = utcnow()
    return RebuildResult(events=total, rows=counts, seconds=time.perf_counter() - started)
