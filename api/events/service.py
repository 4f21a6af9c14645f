"""Writing events: `emit` adds one to the caller's transaction; after that transaction commits,
captures (tests) see it and consumers are woken. A rollback writes and wakes nothing."""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction
from sqlalchemy.sql import visitors

from api.db import utcnow
from api.events.kinds import KINDS, DomainEvent, EventActorKind
from api.events.models import StoredEvent

log = logging.getLogger(__name__)

_PENDING_KEY = "events_emitted"
_ROWS_KEY = "events_rows"
_MARKS_KEY = "events_savepoints"
# Test hook (tests/helpers/events.py): lists that receive every event once its transaction
# has committed, in emission order.
capture_sinks: list[list[DomainEvent]] = []


def about(
    *,
    actor: Any,
    conversation: Any | None = None,
    case_id: int | None = None,
    channel: str | None = None,
) -> dict[str, Any]:
    """The envelope fields of an event about `conversation` (or a case) done by `actor`.

    `actor` is a timeline Actor (kind, analyst_id), a rule's actor or an EventActorKind."""
    if isinstance(actor, EventActorKind):
        actor_kind, actor_id = actor, None
    elif getattr(actor, "rule_execution_id", None) is not None:
        # An automation acting (api/automations/engine.py RuleActor): its events say `rule`
        # and name the ledger row that caused them, which bounds chains of rules.
        actor_kind, actor_id = EventActorKind.RULE, actor.rule_execution_id
    else:
        actor_kind, actor_id = EventActorKind(str(actor.kind)), actor.analyst_id
    if conversation is not None:
        case_id = case_id if case_id is not None else conversation.case_id
        channel = channel or str(conversation.channel)
    return {
        "case_id": case_id,
        "conversation_id": conversation.id if conversation is not None else None,
        "channel": channel,
        "actor_kind": actor_kind,
        "actor_id": actor_id,
    }


def emit(session: AsyncSession, event: DomainEvent) -> None:
    """Record `event` in the caller's transaction: its row is written, with every other event
    of the transaction in one INSERT, just before the transaction commits (no ORM object: a
    flushed event cost more than the change it records). A rolled-back savepoint drops the
    events emitted inside it; a rolled-back transaction writes none."""
    info = session.info
    rows: list[dict[str, Any]] | None = info.get(_ROWS_KEY)
    if rows is None:
        rows = info[_ROWS_KEY] = []
    rows.append(
        {
            "kind": event.kind,
            "case_id": event.case_id,
            "conversation_id": event.conversation_id,
            "channel": event.channel,
            "actor_kind": str(event.actor_kind),
            "actor_id": event.actor_id,
            "occurred_at": event.occurred_at,
            "payload": event.payload(),
        }
    )
    pending: list[DomainEvent] | None = info.get(_PENDING_KEY)
    if pending is None:
        pending = info[_PENDING_KEY] = []
        _on_commit(session, pending)
    pending.append(event)


@sa.event.listens_for(Session, "before_commit")
def _write_rows(session: Session) -> None:
    """One INSERT of the transaction's events, in emission order, as it commits (a savepoint's
    release leaves them to the transaction's own commit)."""
    if not session.in_nested_transaction():
        _write_pending(session)


@sa.event.listens_for(Session, "do_orm_execute")
def _write_before_reading(state: ORMExecuteState) -> None:
    """A statement of the same transaction that reads the events table sees the events emitted
    before it (as the ORM's autoflush would show them)."""
    if state.session.info.get(_ROWS_KEY) and _reads_events(state.statement):
        _write_pending(state.session)


def _write_pending(session: Session) -> None:
    rows = session.info.pop(_ROWS_KEY, None)
    if not rows:
        return
    now = utcnow()
    session.execute(_insert_statement(), [{**row, "recorded_at": now} for row in rows])
    # Written inside the savepoints now open: their rollback takes these rows back with them,
    # and what they emit from now on starts the new list.
    marks: dict[int, tuple[int, int]] = session.info.get(_MARKS_KEY, {})
    for key, (_, pending) in marks.items():
        marks[key] = (0, pending)


_READS_EVENTS: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _reads_events(statement: Any) -> bool:
    """Whether `statement` names the events table (remembered per statement object: the hot
    paths' statements are built once)."""
    try:
        known = _READS_EVENTS.get(statement)
    except TypeError:
        known = None
    if known is not None:
        return known
    if isinstance(statement, sa.TextClause):
        found = "events" in statement.text
    else:
        name = _events_table().name  # ORM statements carry annotated copies of the table
        found = any(
            isinstance(element, sa.TableClause) and element.name == name
            for element in visitors.iterate(statement)
        )
    with contextlib.suppress(TypeError):
        _READS_EVENTS[statement] = found
    return found


@sa.event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:
        marks: dict[int, tuple[int, int]] = session.info.setdefault(_MARKS_KEY, {})
        marks[id(transaction)] = (
            len(session.info.get(_ROWS_KEY) or ()),
            len(session.info.get(_PENDING_KEY) or ()),
        )


@sa.event.listens_for(Session, "after_soft_rollback")
def _drop_rolled_back(session: Session, previous_transaction: SessionTransaction) -> None:
    """A savepoint rolled back: the events emitted inside it were never made."""
    if not previous_transaction.nested:
        return
    mark = session.info.get(_MARKS_KEY, {}).get(id(previous_transaction))
    if mark is None:
        return
    rows, pending = session.info.get(_ROWS_KEY), session.info.get(_PENDING_KEY)
    if rows is not None:
        del rows[mark[0] :]
    if pending is not None:
        del pending[mark[1] :]


@sa.event.listens_for(Session, "after_transaction_end")
def _forget_transaction(session: Session, transaction: SessionTransaction) -> None:
    # A savepoint's mark stays until the transaction ends (after_soft_rollback comes after
    # after_transaction_end); a new savepoint that reuses its id overwrites it.
    if not transaction.nested and transaction.parent is None:
        # The transaction ended: committed (its rows were written) or rolled back (never).
        session.info.pop(_ROWS_KEY, None)
        session.info.pop(_MARKS_KEY, None)


@cache
def _events_table() -> sa.Table:
    return cast(sa.Table, StoredEvent.__table__)


@cache
def _insert_statement() -> sa.Insert:
    return sa.insert(_events_table())


def _on_commit(session: AsyncSession, pending: list[DomainEvent]) -> None:
    from api.db import on_commit

    async def committed() -> None:
        session.info.pop(_PENDING_KEY, None)
        await announce_committed(session.bind, pending)

    on_commit(session, committed)


async def announce_committed(bind: object, events: Sequence[DomainEvent]) -> None:
    """Events committed on `bind` (a session's, after its commit; or written by the caller in
    one statement outside any session, see api.conversations.delivery): captures see them and
    consumers are woken."""
    for sink in capture_sinks:
        sink.extend(events)
    from api.events.consumers import wake_committed

    try:
        await wake_committed(bind, frozenset(event.kind for event in events))
    except Exception:  # consumers catch up by polling; the change is committed
        log.exception("waking event consumers failed")


def forget_pending(session: AsyncSession) -> None:
    """Drop the record of emitted events after a rollback (unit_of_work drops the hooks)."""
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_ROWS_KEY, None)


@dataclass(frozen=True)
class EventRecord:
    """A stored event as consumers see it: its place in the stream and the typed event."""

    id: int
    tx_id: int
    event: DomainEvent

    @property
    def kind(self) -> str:
        return self.event.kind


def to_record(row: StoredEvent) -> EventRecord:
    model = KINDS[row.kind]
    event = model.model_validate(
        {
            **row.payload,
            "case_id": row.case_id,
            "conversation_id": row.conversation_id,
            "channel": row.channel,
            "actor_kind": row.actor_kind,
            "actor_id": row.actor_id,
            "occurred_at": row.occurred_at,
        }
    )
    return EventRecord(id=row.id, tx_id=row.tx_id, event=event)


async def get_events(
    session: AsyncSession,
    *,
    case_id: int | None = None,
    conversation_id: int | None = None,
    kinds: Sequence[str] | None = None,
    after_id: int = 0,
    limit: int = 500,
) -> Sequence[EventRecord]:
    """Committed events by case or conversation, oldest first (reads, reports, tests)."""
    query = sa.select(StoredEvent).where(StoredEvent.id > after_id)
    if case_id is not None:
        query = query.where(StoredEvent.case_id == case_id)
    if conversation_id is not None:
        query = query.where(StoredEvent.conversation_id == conversation_id)
    if kinds is not None:
        query = query.where(StoredEvent.kind.in_(list(kinds)))
    rows = (await session.scalars(query.order_by(StoredEvent.id).limit(limit))).all()
    return [to_record(row) for row in rows]
