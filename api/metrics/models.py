"""Rollups of the event stream that the metrics read (maintained by the `metrics-rollups`
consumer, rebuilt from scratch by `tratativa report rebuild`).

They hold facts, never estimates: every row is derived from events, one row per conversation,
case, outbound message, measured interval or counted event, with the brand, channel and
analyst already attached so the dashboard's queries need no join with the live tables. The
columns named `*_state` / `pending_*` are the fold's memory between events.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class MetricConversation(Base):
    """One conversation: when we first wrote, when the infringer first answered, handoffs,
    opt-out; plus the open response timers."""

    __tablename__ = "metric_conversations"
    __table_args__ = (sa.Index("ix_metric_conversations_started_at", "started_at"),)

    conversation_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    case_id: Mapped[int | None] = mapped_column(index=True)
    brand_id: Mapped[int | None]
    channel: Mapped[str] = mapped_column(sa.String(16))
    provider: Mapped[str | None] = mapped_column(sa.String(40))
    started_at: Mapped[dt.datetime]
    week: Mapped[dt.date]
    contacted_at: Mapped[dt.datetime | None]
    engaged_at: Mapped[dt.datetime | None]
    opted_out_at: Mapped[dt.datetime | None]
    handoffs: Mapped[int] = mapped_column(default=0)
    last_analyst_id: Mapped[int | None]
    # The fold's open timers.
    pending_since: Mapped[dt.datetime | None]
    bot_answered: Mapped[bool] = mapped_column(default=False)
    handoff_since: Mapped[dt.datetime | None]
    queue_since: Mapped[dt.datetime | None]


class MetricCase(Base):
    """One case: the funnel stages it reached (first time), its agreement and payment, and
    to whom the agreement is credited."""

    __tablename__ = "metric_cases"
    __table_args__ = (
        sa.Index("ix_metric_cases_cohort_at", "cohort_at"),
        sa.Index("ix_metric_cases_agreement_at", "agreement_at"),
    )

    case_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    brand_id: Mapped[int | None] = mapped_column(index=True)
    reference_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    # The case's cohort: when it was notified (its first event when it never was).
    cohort_at: Mapped[dt.datetime]
    week: Mapped[dt.date]
    status: Mapped[str | None] = mapped_column(sa.String(24))
    notified_at: Mapped[dt.datetime | None]
    engaged_at: Mapped[dt.datetime | None]
    handoff_at: Mapped[dt.datetime | None]
    agreement_at: Mapped[dt.datetime | None]
    agreement_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    agreement_installments: Mapped[int | None]
    agreements: Mapped[int] = mapped_column(default=0)
    agreement_channel: Mapped[str | None] = mapped_column(sa.String(16))
    agreement_analyst_id: Mapped[int | None]
    bot_only: Mapped[bool] = mapped_column(default=False)
    paid_at: Mapped[dt.datetime | None]
    paid_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    removed_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    reopened_at: Mapped[dt.datetime | None]
    last_inbound_channel: Mapped[str | None] = mapped_column(sa.String(16))
    last_analyst_id: Mapped[int | None]


class MetricCaseChannel(Base):
    """A case on one channel: when we first wrote to the infringer there, when they first
    answered there."""

    __tablename__ = "metric_case_channels"
    __table_args__ = (sa.Index("ix_metric_case_channels_cohort_at", "cohort_at"),)

    case_id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    # The case's cohort, copied here (kept equal by the fold) so a period selects these rows
    # by index on both sides of the join with metric_cases.
    cohort_at: Mapped[dt.datetime]
    contacted_at: Mapped[dt.datetime | None]
    engaged_at: Mapped[dt.datetime | None]


class MetricOutbound(Base):
    """One outbound message and how far its delivery got (delivered/read/failed)."""

    __tablename__ = "metric_outbound"
    __table_args__ = (sa.Index("ix_metric_outbound_sent_at", "sent_at"),)

    message_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    conversation_id: Mapped[int | None]
    case_id: Mapped[int | None]
    brand_id: Mapped[int | None]
    channel: Mapped[str] = mapped_column(sa.String(16))
    provider: Mapped[str | None] = mapped_column(sa.String(40))
    author_kind: Mapped[str] = mapped_column(sa.String(16))
    analyst_id: Mapped[int | None]
    sent_at: Mapped[dt.datetime]
    accepted: Mapped[bool] = mapped_column(default=False)
    delivered: Mapped[bool] = mapped_column(default=False)
    read: Mapped[bool] = mapped_column(default=False)
    failed: Mapped[bool] = mapped_column(default=False)


class MetricInterval(Base):
    """One measured wait, in wall-clock and business seconds: a bot or human first/next
    response, a queue wait, notice → agreement, notice → payment."""

    __tablename__ = "metric_intervals"
    __table_args__ = (sa.Index("ix_metric_intervals_kind_started_at", "kind", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(sa.String(24))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime]
    week: Mapped[dt.date]
    wall_seconds: Mapped[float]
    business_seconds: Mapped[float]
    case_id: Mapped[int | None]
    conversation_id: Mapped[int | None]
    brand_id: Mapped[int | None]
    channel: Mapped[str | None] = mapped_column(sa.String(16))
    analyst_id: Mapped[int | None]


class MetricEvent(Base):
    """An event the reports count (handoffs and their reasons, claims, agreements, payments,
    opt-outs, inbound messages, SLA breaches), with brand, channel and analyst attached."""

    __tablename__ = "metric_events"
    __table_args__ = (sa.Index("ix_metric_events_kind_occurred_at", "kind", "occurred_at"),)

    event_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(sa.String(40))
    occurred_at: Mapped[dt.datetime]
    case_id: Mapped[int | None]
    conversation_id: Mapped[int | None]
    brand_id: Mapped[int | None]
    channel: Mapped[str | None] = mapped_column(sa.String(16))
    analyst_id: Mapped[int | None]
    label: Mapped[str | None] = mapped_column(sa.String(200))
    amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
