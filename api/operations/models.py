"""Operations tables: holidays an admin adds, admin-changed settings, alerts and preferences."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin, JSONType


class BusinessHoliday(CreatedAtMixin, Base):
    """A day the firm does not work, beyond the national holidays of the library."""

    __tablename__ = "business_holidays"

    day: Mapped[dt.date] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    created_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )


class OperationsSetting(Base):
    """An admin's override of a default (the calendar, an alert kind's threshold), as JSON."""

    __tablename__ = "operations_settings"

    key: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[dt.datetime]
    updated_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )


class Alert(IdMixin, CreatedAtMixin, Base):
    """One occurrence of something an analyst must see; `key` makes it fire once."""

    __tablename__ = "alerts"
    __table_args__ = (
        sa.Index("ix_alerts_recipient_open", "recipient_id", "state", "id"),
        sa.Index("ix_alerts_case", "case_id", "id"),
        sa.Index("ix_alerts_open_subject", "kind", "subject", "state"),
    )

    # kind:subject:cycle — unique, so a replayed event or a second sweep raises nothing new.
    key: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[str] = mapped_column(sa.String(40))
    subject: Mapped[str] = mapped_column(sa.String(80))
    cycle: Mapped[str] = mapped_column(sa.String(80))
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="SET NULL")
    )
    # Who it is for; None: every supervisor (an unassigned case, a breach).
    recipient_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )
    to_supervisors: Mapped[bool] = mapped_column(default=False)
    severity: Mapped[str] = mapped_column(sa.String(10), default="info")
    title: Mapped[str] = mapped_column(sa.String(200))
    body: Mapped[str] = mapped_column(sa.Text, default="")
    due_at: Mapped[dt.datetime | None]
    # open → acknowledged → resolved; snoozed hides it until snoozed_until (then open again).
    state: Mapped[str] = mapped_column(sa.String(16), default="open")
    # Same-cycle repeats folded into this alert (no storms): how many, and the last one.
    repeats: Mapped[int] = mapped_column(default=0)
    last_seen_at: Mapped[dt.datetime | None]
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )
    snoozed_until: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )


class AlertPreference(Base):
    """An analyst's choice: e-mail for these kinds, and quiet hours (no e-mail then)."""

    __tablename__ = "alert_preferences"

    analyst_id: Mapped[int] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="CASCADE"), primary_key=True
    )
    email_kinds: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    quiet_start: Mapped[dt.time | None] = mapped_column(sa.Time)
    quiet_end: Mapped[dt.time | None] = mapped_column(sa.Time)
    updated_at: Mapped[dt.datetime | None]


class AlertDigest(IdMixin, CreatedAtMixin, Base):
    """The outbox of alert e-mails to analysts: one row per digest, written in the sweep's
    transaction, delivered by the worker with a lease and retries (like api/outbox)."""

    __tablename__ = "alert_digests"
    __table_args__ = (sa.Index("ix_alert_digests_due", "state", "next_attempt_at"),)

    analyst_id: Mapped[int] = mapped_column(sa.ForeignKey("analysts.id", ondelete="CASCADE"))
    to_address: Mapped[str] = mapped_column(sa.String(254))
    subject: Mapped[str] = mapped_column(sa.String(300))
    body: Mapped[str] = mapped_column(sa.Text)
    alert_count: Mapped[int]
    # pending → in_flight → done | failed
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    provider_id: Mapped[str | None] = mapped_column(sa.String(255))
    done_at: Mapped[dt.datetime | None]


class BrandDefaultAnalyst(Base):
    """The analyst new cases of a brand go to on import (else round-robin)."""

    __tablename__ = "brand_default_analysts"

    brand_id: Mapped[int] = mapped_column(
        sa.ForeignKey("brands.id", ondelete="CASCADE"), primary_key=True
    )
    analyst_id: Mapped[int] = mapped_column(sa.ForeignKey("analysts.id", ondelete="CASCADE"))


class AlertEmail(Base):
    """One alert owed to one analyst by e-mail (their preference for its kind); `digest_id`
    is set when the digest that carries it is written. Unique per (alert, analyst)."""

    __tablename__ = "alert_emails"
    __table_args__ = (sa.Index("ix_alert_emails_pending", "analyst_id", "digest_id"),)

    alert_id: Mapped[int] = mapped_column(
        sa.ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True
    )
    analyst_id: Mapped[int] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[dt.datetime]
    digest_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("alert_digests.id", ondelete="SET NULL")
    )
