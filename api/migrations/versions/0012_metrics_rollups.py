"""metrics: rollups maintained from the event stream

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "metric_conversations",
        sa.Column("conversation_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("contacted_at", UTCDateTime(), nullable=True),
        sa.Column("engaged_at", UTCDateTime(), nullable=True),
        sa.Column("opted_out_at", UTCDateTime(), nullable=True),
        sa.Column("handoffs", sa.Integer(), nullable=False),
        sa.Column("last_analyst_id", sa.Integer(), nullable=True),
        sa.Column("pending_since", UTCDateTime(), nullable=True),
        sa.Column("bot_answered", sa.Boolean(), nullable=False),
        sa.Column("handoff_since", UTCDateTime(), nullable=True),
        sa.Column("queue_since", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("conversation_id", name=op.f("pk_metric_conversations")),
    )
    op.create_index(op.f("ix_metric_conversations_case_id"), "metric_conversations", ["case_id"])
    op.create_index("ix_metric_conversations_started_at", "metric_conversations", ["started_at"])
    op.create_table(
        "metric_cases",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("reference_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("cohort_at", UTCDateTime(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=True),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.Column("engaged_at", UTCDateTime(), nullable=True),
        sa.Column("handoff_at", UTCDateTime(), nullable=True),
        sa.Column("agreement_at", UTCDateTime(), nullable=True),
        sa.Column("agreement_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("agreement_installments", sa.Integer(), nullable=True),
        sa.Column("agreements", sa.Integer(), nullable=False),
        sa.Column("agreement_channel", sa.String(length=16), nullable=True),
        sa.Column("agreement_analyst_id", sa.Integer(), nullable=True),
        sa.Column("bot_only", sa.Boolean(), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("paid_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("reopened_at", UTCDateTime(), nullable=True),
        sa.Column("last_inbound_channel", sa.String(length=16), nullable=True),
        sa.Column("last_analyst_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", name=op.f("pk_metric_cases")),
    )
    op.create_index(op.f("ix_metric_cases_brand_id"), "metric_cases", ["brand_id"])
    op.create_index("ix_metric_cases_cohort_at", "metric_cases", ["cohort_at"])
    op.create_index("ix_metric_cases_agreement_at", "metric_cases", ["agreement_at"])
    op.create_table(
        "metric_case_channels",
        sa.Column("case_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("cohort_at", UTCDateTime(), nullable=False),
        sa.Column("contacted_at", UTCDateTime(), nullable=True),
        sa.Column("engaged_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("case_id", "channel", name=op.f("pk_metric_case_channels")),
    )
    op.create_index("ix_metric_case_channels_cohort_at", "metric_case_channels", ["cohort_at"])
    op.create_table(
        "metric_outbound",
        sa.Column("message_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=True),
        sa.Column("author_kind", sa.String(length=16), nullable=False),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("delivered", sa.Boolean(), nullable=False),
        sa.Column("read", sa.Boolean(), nullable=False),
        sa.Column("failed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_metric_outbound")),
    )
    op.create_index("ix_metric_outbound_sent_at", "metric_outbound", ["sent_at"])
    op.create_table(
        "metric_intervals",
        sa.Column("id", _BIG_ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=False),
        sa.Column("week", sa.Date(), nullable=False),
        sa.Column("wall_seconds", sa.Double(), nullable=False),
        sa.Column("business_seconds", sa.Double(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_metric_intervals")),
    )
    op.create_index(
        "ix_metric_intervals_kind_started_at", "metric_intervals", ["kind", "started_at"]
    )
    op.create_table(
        "metric_events",
        sa.Column("event_id", _BIG_ID, autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("brand_id", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=True),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_metric_events")),
    )
    op.create_index("ix_metric_events_kind_occurred_at", "metric_events", ["kind", "occurred_at"])


def downgrade() -> None:
    op.drop_index("ix_metric_events_kind_occurred_at", table_name="metric_events")
    op.drop_table("metric_events")
    op.drop_index("ix_metric_intervals_kind_started_at", table_name="metric_intervals")
    op.drop_table("metric_intervals")
    op.drop_index("ix_metric_outbound_sent_at", table_name="metric_outbound")
    op.drop_table("metric_outbound")
    op.drop_index("ix_metric_case_channels_cohort_at", table_name="metric_case_channels")
    op.drop_table("metric_case_channels")
    op.drop_index("ix_metric_cases_agreement_at", table_name="metric_cases")
    op.drop_index("ix_metric_cases_cohort_at", table_name="metric_cases")
    op.drop_index(op.f("ix_metric_cases_brand_id"), table_name="metric_cases")
    op.drop_table("metric_cases")
    op.drop_index("ix_metric_conversations_started_at", table_name="metric_conversations")
    op.drop_index(op.f("ix_metric_conversations_case_id"), table_name="metric_conversations")
    op.drop_table("metric_conversations")
