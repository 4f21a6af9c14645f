"""Timeline entries: never updated, never deleted (code path and database trigger)."""

from __future__ import annotations

import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class EntryKind(enum.StrEnum):
    MESSAGE = "message"
    STATUS_CHANGE = "status_change"
    HANDOFF = "handoff"
    NOTE = "note"
    ALERT = "alert"
    LISTING = "listing"
    DELIVERY = "delivery"
    SYSTEM = "system"


class ActorKind(enum.StrEnum):
    INFRINGER = "infringer"
    BOT = "bot"
    ANALYST = "analyst"
    SYSTEM = "system"


class TimelineEntry(IdMixin, CreatedAtMixin, Base):
    """One fact in a case's history. A conversation not yet linked to a case keeps its entries
    by conversation; the case timeline reads both, so linking later needs no update."""

    __tablename__ = "timeline_entries"
    __table_args__ = (
        sa.Index("ix_timeline_entries_case_id_id", "case_id", "id"),
        sa.Index("ix_timeline_entries_conversation_id_id", "conversation_id", "id"),
    )

    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("conversations.id"), index=True
    )
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("messages.id"))
    kind: Mapped[EntryKind] = mapped_column(str_enum(EntryKind, 16))
    actor_kind: Mapped[ActorKind] = mapped_column(str_enum(ActorKind, 16))
    analyst_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
    actor_name: Mapped[str | None] = mapped_column(sa.String(120))
    summary: Mapped[str] = mapped_column(sa.Text)
    data: Mapped[dict[str, Any] | None]
