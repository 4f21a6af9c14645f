"""`capture_events()`: the domain events a block of code emitted AND committed, in order.

Events reach the capture only once their transaction has committed (like a consumer), so a
rolled-back transaction shows none:

    with capture_events() as events:
        async with unit_of_work() as session:
            await do_claim(session, conversation_id=..., analyst=ana)
    assert kinds(events) == ["handoff.claimed"]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from api.events.kinds import DomainEvent
from api.events.service import capture_sinks


@contextmanager
def capture_events() -> Iterator[list[DomainEvent]]:
    sink: list[DomainEvent] = []
    capture_sinks.append(sink)
    try:
        yield sink
    finally:
        capture_sinks.remove(sink)


def kinds(events: Sequence[DomainEvent]) -> list[str]:
    return [event.kind for event in events]


def only(events: Sequence[DomainEvent], event_type: type[DomainEvent]) -> DomainEvent:
    """The one event of `event_type` among `events` (fails if there are none or several)."""
    found = [event for event in events if isinstance(event, event_type)]
    assert len(found) == 1, f"expected one {event_type.kind}, got {kinds(events)}"
    return found[0]
