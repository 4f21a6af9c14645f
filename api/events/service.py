"""Writing events: `emit` adds one to the caller's transaction; after that transaction commits,
captures (tests) see it and consumers are woken. A rollback writes and wakes nothing."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.events.kinds import KINDS, DomainEvent, EventActorKind
from api.events.models import StoredEvent

log = logging.getLogger(__name__)

_PENDING_KEY = "events_emitted"
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
    """Record `event` in the caller's transaction (written with its next flush or commit)."""
    session.add(
        StoredEvent(
            kind=event.kind,
            case_id=event.case_id,
            conversation_id=event.conversation_id,
            channel=event.channel,
            actor_kind=str(event.actor_kind),
            actor_id=event.actor_id,
            occurred_at=event.occurred_at,
            payload=event.payload(),
        )
    )
    pending: list[DomainEvent] | None = session.info.get(_PENDING_KEY)
    if pending is None:
        pending = session.info[_PENDING_KEY] = []
        _on_commit(session, pending)
    pending.append(event)


def _on_commit(session: AsyncSession, pending: list[DomainEvent]) -> None:
    from api.db import on_commit

    async def committed() -> None:
        session.info.pop(_PENDING_KEY, None)
        for sink in capture_sinks:
            sink.extend(pending)
        from api.events.consumers import wake_after_commit

        try:
            await wake_after_commit(session, frozenset(event.kind for event in pending))
        except Exception:  # consumers catch up by polling; the change is committed
            log.exception("waking event consumers failed")

    on_commit(session, committed)


def forget_pending(session: AsyncSession) -> None:
    """Drop the record of emitted events after a rollback (unit_of_work drops the hooks)."""
    session.info.pop(_PENDING_KEY, None)


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
