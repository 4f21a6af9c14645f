"""Notice sends: a batch (one case or a selection), one item per case in it, and the WhatsApp
opt-ins that allow a business-initiated notice on that channel."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.conversations.models import Channel
from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class BatchState(enum.StrEnum):
    QUEUED = "queued"  # items wait (business hours, rate limits)
    DONE = "done"  # every item sent, skipped or failed
    CANCELLED = "cancelled"


class ItemState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"  # queued in the outbox, case moved to NOTIFICADO
    SKIPPED = "skipped"  # not sent, with the reason (opt-out, no address, status…)
    FAILED = "failed"  # an unexpected error; nothing was sent


class OutreachBatch(IdMixin, CreatedAtMixin, Base):
    """One request to send the notice: a single case or a selection."""

    __tablename__ = "outreach_batches"

    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    state: Mapped[BatchState] = mapped_column(str_enum(BatchState, 16), default=BatchState.QUEUED)
    # Who asked (None: the system, e.g. the CLI without --analista); the notice is signed by them.
    analyst_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
    actor_name: Mapped[str | None] = mapped_column(sa.String(120))
    # What was selected, for the report ({"case_ids": […]} or {"brand": …, "status": …}).
    selection: Mapped[dict[str, Any]]
    total: Mapped[int] = mapped_column(default=0)
    # A client's Idempotency-Key: the same request twice is the same batch.
    request_key: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    finished_at: Mapped[dt.datetime | None]


class OutreachItem(IdMixin, CreatedAtMixin, Base):
    """One case of a batch: sent once at most (unique per batch and case), or skipped with why."""

    __tablename__ = "outreach_items"
    __table_args__ = (
        sa.UniqueConstraint("batch_id", "case_id"),
        sa.Index("ix_outreach_items_due", "state", "not_before"),
        sa.Index("ix_outreach_items_recent", "channel", "processed_at"),
    )

    batch_id: Mapped[int] = mapped_column(
        sa.ForeignKey("outreach_batches.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    state: Mapped[ItemState] = mapped_column(str_enum(ItemState, 16), default=ItemState.PENDING)
    # Why it was skipped or failed: a stable code (REASONS) and a sentence for people.
    reason: Mapped[str | None] = mapped_column(sa.String(40))
    detail: Mapped[str | None] = mapped_column(sa.String(300))
    # Not before this moment (the next business opening when it was queued outside hours).
    not_before: Mapped[dt.datetime]
    processed_at: Mapped[dt.datetime | None]
    address: Mapped[str | None] = mapped_column(sa.String(254))
    conversation_id: Mapped[int | None] = mapped_column(sa.ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(sa.ForeignKey("messages.id"))


class WhatsAppOptIn(IdMixin, CreatedAtMixin, Base):
    """A phone that agreed to receive business-initiated WhatsApp messages (Meta's rule); an
    opt-out on the contact point still wins."""

    __tablename__ = "whatsapp_opt_ins"

    contact_point_id: Mapped[int] = mapped_column(
        sa.ForeignKey("contact_points.id", ondelete="CASCADE"), unique=True
    )
    source: Mapped[str] = mapped_column(sa.String(200))
    analyst_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
