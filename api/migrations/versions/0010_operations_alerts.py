"""operations: ownership, business calendar, alerts

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 08:00:00.000000
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from api.db import UTCDateTime

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The alert consumers (api/operations/consumer.py, live.py) start at the head of the stream as
# it is now: an install with a history is not flooded with alerts about the past, and on a new
# one the very first event is handled (a cursor created lazily "at the head" would skip it).
CONSUMERS = ("operations-alerts", "operations-notices", "live-alerts")


def _analyst_fk(table: str, column: str, ondelete: str = "SET NULL") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["analysts.id"], name=op.f(f"fk_{table}_{column}_analysts"), ondelete=ondelete
    )


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_cases_assignee_id_analysts"),
            "analysts",
            ["assignee_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_cases_assignee_id"), ["assignee_id"], unique=False)

    op.create_table(
        "business_holidays",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _analyst_fk("business_holidays", "created_by_id"),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_business_holidays")),
    )
    op.create_table(
        "operations_settings",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("value", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        _analyst_fk("operations_settings", "updated_by_id"),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_operations_settings")),
    )
    op.create_table(
        "brand_default_analysts",
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("analyst_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["brand_id"],
            ["brands.id"],
            name=op.f("fk_brand_default_analysts_brand_id_brands"),
            ondelete="CASCADE",
        ),
        _analyst_fk("brand_default_analysts", "analyst_id", "CASCADE"),
        sa.PrimaryKeyConstraint("brand_id", name=op.f("pk_brand_default_analysts")),
    )
    op.create_table(
        "alert_digests",
        sa.Column("analyst_id", sa.Integer(), nullable=False),
        sa.Column("to_address", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("alert_count", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _analyst_fk("alert_digests", "analyst_id", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_digests")),
    )
    op.create_index(
        "ix_alert_digests_due", "alert_digests", ["state", "next_attempt_at"], unique=False
    )
    op.create_table(
        "alerts",
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("cycle", sa.String(length=80), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("recipient_id", sa.Integer(), nullable=True),
        sa.Column("to_supervisors", sa.Boolean(), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("repeats", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.Column("acknowledged_by_id", sa.Integer(), nullable=True),
        sa.Column("snoozed_until", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_alerts_case_id_cases"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_alerts_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        _analyst_fk("alerts", "recipient_id"),
        _analyst_fk("alerts", "acknowledged_by_id"),
        _analyst_fk("alerts", "resolved_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("key", name=op.f("uq_alerts_key")),
    )
    op.create_index(
        "ix_alerts_recipient_open", "alerts", ["recipient_id", "state", "id"], unique=False
    )
    op.create_index("ix_alerts_case", "alerts", ["case_id", "id"], unique=False)
    op.create_index("ix_alerts_open_subject", "alerts", ["kind", "subject", "state"], unique=False)
    op.create_table(
        "alert_emails",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("analyst_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("digest_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.id"],
            name=op.f("fk_alert_emails_alert_id_alerts"),
            ondelete="CASCADE",
        ),
        _analyst_fk("alert_emails", "analyst_id", "CASCADE"),
        sa.ForeignKeyConstraint(
            ["digest_id"],
            ["alert_digests.id"],
            name=op.f("fk_alert_emails_digest_id_alert_digests"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("alert_id", "analyst_id", name=op.f("pk_alert_emails")),
    )
    op.create_index(
        "ix_alert_emails_pending", "alert_emails", ["analyst_id", "digest_id"], unique=False
    )
    op.create_table(
        "alert_preferences",
        sa.Column("analyst_id", sa.Integer(), nullable=False),
        sa.Column("email_kinds", JSONType, nullable=False),
        sa.Column("quiet_start", sa.Time(), nullable=True),
        sa.Column("quiet_end", sa.Time(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        _analyst_fk("alert_preferences", "analyst_id", "CASCADE"),
        sa.PrimaryKeyConstraint("analyst_id", name=op.f("pk_alert_preferences")),
    )
    head = (
        op.get_bind()
        .execute(sa.text("SELECT tx_id, id FROM events ORDER BY tx_id DESC, id DESC LIMIT 1"))
        .first()
    )
    consumers = sa.table(
        "event_consumers",
        sa.column("name", sa.String),
        sa.column("last_tx_id", sa.BigInteger),
        sa.column("last_event_id", sa.BigInteger),
        sa.column("updated_at", UTCDateTime()),
    )
    op.bulk_insert(
        consumers,
        [
            {
                "name": name,
                "last_tx_id": int(head[0]) if head else 0,
                "last_event_id": int(head[1]) if head else 0,
                "updated_at": dt.datetime.now(dt.UTC),
            }
            for name in CONSUMERS
        ],
    )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM event_consumers WHERE name IN :names").bindparams(
            sa.bindparam("names", expanding=True, value=list(CONSUMERS))
        )
    )
    op.drop_table("alert_preferences")
    op.drop_index("ix_alert_emails_pending", table_name="alert_emails")
    op.drop_table("alert_emails")
    op.drop_index("ix_alerts_open_subject", table_name="alerts")
    op.drop_index("ix_alerts_case", table_name="alerts")
    op.drop_index("ix_alerts_recipient_open", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_alert_digests_due", table_name="alert_digests")
    op.drop_table("alert_digests")
    op.drop_table("brand_default_analysts")
    op.drop_table("operations_settings")
    op.drop_table("business_holidays")
    with op.batch_alter_table("cases") as batch:
        batch.drop_index(op.f("ix_cases_assignee_id"))
        batch.drop_constraint(op.f("fk_cases_assignee_id_analysts"), type_="foreignkey")
        batch.drop_column("assignee_id")
