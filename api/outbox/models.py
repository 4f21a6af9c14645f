"""The outbox: one row per outbound message to deliver, written with the turn that made it."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.conversations.models import Channel
from api.db import Base, CreatedAtMixin, IdMixin, utcnow
from api.enums import str_enum


class OutboxState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"
    FAILED = "failed"


class OutboxItem(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_due", "state", "next_attempt_at"),)

    message_id: Mapped[int] = mapped_column(sa.ForeignKey("messages.id"), unique=True)
    conversation_id: Mapped[int] = mapped_column(sa.ForeignKey("conversations.id"), index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    payload: Mapped[dict[str, Any]]
    state: Mapped[OutboxState] = mapped_column(
        str_enum(OutboxState, 16), default=OutboxState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    done_at: Mapped[dt.datetime | None]
