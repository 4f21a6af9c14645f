"""The code-path guard: a session that tries to change or delete a timeline row fails to flush."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from api.errors import AppendOnlyViolation
from api.timeline.models import TimelineEntry


@event.listens_for(Session, "before_flush")
def _refuse_timeline_changes(session: Session, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, TimelineEntry):
            raise AppendOnlyViolation("A linha do histórico não pode ser apagada.")
    for obj in session.dirty:
        if isinstance(obj, TimelineEntry) and session.is_modified(obj):
            raise AppendOnlyViolation("A linha do histórico não pode ser alterada.")
