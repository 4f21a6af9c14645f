"""The `metrics-rollups` durable consumer: folds each committed event into the rollups in the
transaction that moves its cursor (so a crash loses or repeats nothing)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.brands.models import Brand
from api.cases.models import Case
from api.conversations.models import Conversation
from api.events.consumers import Consumer, register_consumer
from api.events.kinds import CaseStatusChanged
from api.events.service import EventRecord
from api.metrics.fold import CHANNELS, FOLDED_KINDS, CaseInfo, Ev, Folder
from api.metrics.models import (
    MetricCase,
    MetricCaseChannel,
    MetricConversation,
    MetricOutbound,
)
from api.operations.calendar import BusinessCalendar, load_calendar

NAME = "metrics-rollups"
_CALENDAR_KEY = "metrics_calendar"


def to_ev(record: EventRecord) -> Ev:
    event = record.event
    return Ev(
        id=record.id,
        kind=event.kind,
        case_id=event.case_id,
        conversation_id=event.conversation_id,
        channel=event.channel,
        actor_kind=str(event.actor_kind),
        actor_id=event.actor_id,
        occurred_at=event.occurred_at,
        payload=event.payload(),
    )


async def case_infos(
    session: AsyncSession, case_ids: list[int] | None = None
) -> dict[int, CaseInfo]:
    """Brand and reference amount (the case's own amount, else the brand's base) per case."""
    query = sa.select(Case.id, Case.brand_id, Case.claimed_amount, Brand.base_amount).join(
        Brand, Brand.id == Case.brand_id
    )
    if case_ids is not None:
        query = query.where(Case.id.in_(case_ids))
    rows = (await session.execute(query)).all()
    return {
        r.id: CaseInfo(
            brand_id=r.brand_id,
            reference_amount=Decimal(r.claimed_amount)
            if r.claimed_amount is not None
            else r.base_amount,
        )
        for r in rows
    }


def provider_column() -> Any:
    """conversations.provider once the providers work adds it (grouped per channel until then)."""
    return getattr(Conversation, "provider", None)


_ROWS_KEY = "metrics_rows"
# In SessionStore.rows: a key a batch's prefetch looked up and did not find (no second read).
_ABSENT: Any = object()


class SessionStore:
    """Rows from and into the consumer's transaction. The rows a pass has read or created are
    held for the rest of its transaction: the session's identity map keeps only weak references,
    so a clean row would otherwise be read again for the next event of the batch.

    Its reads do not autoflush: what they read (a rollup row by its key, a case, a
    conversation) cannot depend on the pass's unwritten changes, since every row the pass
    created is held here and found before the database is asked. With autoflush each read that
    missed wrote the pass's changes so far, row by row: the batch is flushed once, at commit."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.rows: dict[tuple[type[Any], Any], Any] = session.info.setdefault(_ROWS_KEY, {})

    async def _get(self, model: type[Any], key: Any) -> Any:
        found = self.rows.get((model, key))
        if found is _ABSENT:
            return None
        if found is None:
            with self.session.no_autoflush:
                found = await self.session.get(model, key)
            if found is not None:
                self.rows[(model, key)] = found
        return found

    async def prefetch(self, model: type[Any], keys: Iterable[Any]) -> None:
        """Read the rows of `keys` not held yet in one statement, and remember the ones that
        do not exist: the events of the batch then find them all here. One key alone is left
        to the event's own read (the same one statement)."""
        missing = [key for key in dict.fromkeys(keys) if (model, key) not in self.rows]
        if len(missing) < 2:
            return
        with self.session.no_autoflush:
            found = await self.session.scalars(_rows_statement(model), {"keys": missing})
        columns = sa.inspect(model).primary_key
        for row in found.all():
            values = tuple(getattr(row, column.key) for column in columns)
            self.rows[(model, values[0] if len(values) == 1 else values)] = row
        for key in missing:
            self.rows.setdefault((model, key), _ABSENT)

    async def case_info(self, case_id: int) -> CaseInfo | None:
        with self.session.no_autoflush:
            return (await case_infos(self.session, [case_id])).get(case_id)

    async def provider_of(self, conversation_id: int) -> str | None:
        column = provider_column()
        if column is None:
            return None
        with self.session.no_autoflush:
            value = await self.session.scalar(
                sa.select(column).where(Conversation.id == conversation_id)
            )
        return str(value) if value is not None else None

    async def get_conversation(self, conversation_id: int) -> MetricConversation | None:
        found: MetricConversation | None = await self._get(MetricConversation, conversation_id)
        return found

    async def get_case(self, case_id: int) -> MetricCase | None:
        found: MetricCase | None = await self._get(MetricCase, case_id)
        return found

    async def get_case_channel(self, case_id: int, channel: str) -> MetricCaseChannel | None:
        found: MetricCaseChannel | None = await self._get(MetricCaseChannel, (case_id, channel))
        return found

    async def get_outbound(self, message_id: int) -> MetricOutbound | None:
        found: MetricOutbound | None = await self._get(MetricOutbound, message_id)
        return found

    def create(self, model: type[Any], **values: Any) -> Any:
        row = model(**values)
        self.session.add(row)
        key = tuple(values.get(column.key) for column in sa.inspect(model).primary_key)
        if None not in key:  # a row keyed by what it describes (not by a sequence)
            self.rows[(model, key[0] if len(key) == 1 else key)] = row
        return row


_ROWS_STATEMENTS: dict[type[Any], sa.Select[Any]] = {}


def _rows_statement(model: type[Any]) -> sa.Select[Any]:
    """The rows of `model` whose primary key is in the expanding `keys` (a composite key as a
    tuple), built once per model."""
    statement = _ROWS_STATEMENTS.get(model)
    if statement is None:
        columns = sa.inspect(model).primary_key
        key = columns[0] if len(columns) == 1 else sa.tuple_(*columns)
        statement = sa.select(model).where(key.in_(sa.bindparam("keys", expanding=True)))
        _ROWS_STATEMENTS[model] = statement
    return statement


# What each folded kind reads besides its case and conversation (Folder.apply reads those for
# every event): the case's row for the channel, or the outbound message's row.
_READS_CASE_CHANNEL = frozenset({"message.received", "message.sent"})
_READS_OUTBOUND = frozenset({"message.delivered", "message.failed"})


async def prefetch_batch(session: AsyncSession, records: Sequence[EventRecord]) -> None:
    """Before a batch is folded, read the rollup rows its events will ask for, one statement per
    table instead of one per event: the cases', the conversations', the case channels' of its
    messages and the outbound rows its delivery updates touch."""
    events = [r.event for r in records if r.kind in FOLDED_KINDS]
    if len(events) < 2:
        return
    store = SessionStore(session)
    await store.prefetch(MetricCase, (e.case_id for e in events if e.case_id is not None))
    await store.prefetch(
        MetricConversation, (e.conversation_id for e in events if e.conversation_id is not None)
    )
    await store.prefetch(
        MetricCaseChannel,
        (
            *(
                (e.case_id, e.channel)
                for e in events
                if e.kind in _READS_CASE_CHANNEL and e.case_id is not None and e.channel
            ),
            # A case notified: its cohort moves on every channel's row.
            *(
                (e.case_id, channel)
                for e in events
                if isinstance(e, CaseStatusChanged)
                and e.case_id is not None
                and e.to_status == "NOTIFICADO"
                for channel in CHANNELS
            ),
        ),
    )
    await store.prefetch(
        MetricOutbound,
        (
            int(message_id)
            for e in events
            if e.kind in _READS_OUTBOUND
            and (message_id := getattr(e, "message_id", None)) is not None
        ),
    )


async def _calendar(session: AsyncSession) -> BusinessCalendar:
    calendar = session.info.get(_CALENDAR_KEY)
    if calendar is None:
        calendar = session.info[_CALENDAR_KEY] = await load_calendar(session)
    assert isinstance(calendar, BusinessCalendar)
    return calendar


async def handle_event(session: AsyncSession, record: EventRecord) -> None:
    folder = Folder(SessionStore(session), await _calendar(session))
    await folder.apply(to_ev(record))
    # No flush per event: the rows this pass created or read are held in its SessionStore (the
    # next event of the batch finds them there) and its reads do not autoflush. The batch's
    # changes are flushed together when its transaction commits, with the cursor's move: a row
    # touched by several events of the batch is written once, inserts of a table go together.


METRICS_ROLLUPS = register_consumer(
    Consumer(
        name=NAME,
        handle=handle_event,
        kinds=FOLDED_KINDS,
        batch_size=500,
        prepare=prefetch_batch,
    )
)
