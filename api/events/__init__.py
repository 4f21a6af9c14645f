"""The typed, durable event stream: what happened, written in the change's own transaction
and read after commit by consumers that keep their own cursor (see consumers.py)."""

from api.events.kinds import KINDS, DomainEvent, EventActorKind
from api.events.service import EventRecord, about, emit, get_events

__all__ = ["KINDS", "DomainEvent", "EventActorKind", "EventRecord", "about", "emit", "get_events"]
