"""outreach: notice sends and bulk send batches

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-30 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")


def _channel() -> sa.Enum:
    return sa.Enum(
        "whatsapp", "email", name="channel", native_enum=False, create_constraint=True, length=16
    )


def upgrade() -> None:
    op.create_table(
        "outreach_batches",
        sa.Column("channel", _channel(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "queued",
                "done",
                "cancelled",
                name="batchstate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=True),
        sa.Column("selection", _JSON, nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=100), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analyst_id"], ["analysts.id"], name=op.f("fk_outreach_batches_analyst_id_analysts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_batches")),
        sa.UniqueConstraint("request_key", name=op.f("uq_outreach_batches_request_key")),
    )
    op.create_table(
        "outreach_items",
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("channel", _channel(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "sent",
                "skipped",
                "failed",
                name="itemstate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("detail", sa.String(length=300), nullable=True),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.Column("address", sa.String(length=254), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["outreach_batches.id"],
            name=op.f("fk_outreach_items_batch_id_outreach_batches"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_outreach_items_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_outreach_items_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_outreach_items_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_items")),
        sa.UniqueConstraint("batch_id", "case_id", name=op.f("uq_outreach_items_batch_id_case_id")),
    )
    op.create_index(op.f("ix_outreach_items_batch_id"), "outreach_items", ["batch_id"])
    op.create_index(op.f("ix_outreach_items_case_id"), "outreach_items", ["case_id"])
    op.create_index("ix_outreach_items_due", "outreach_items", ["state", "not_before"])
    op.create_index("ix_outreach_items_recent", "outreach_items", ["channel", "processed_at"])
    op.create_table(
        "whatsapp_opt_ins",
        sa.Column("contact_point_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analyst_id"], ["analysts.id"], name=op.f("fk_whatsapp_opt_ins_analyst_id_analysts")
        ),
        sa.ForeignKeyConstraint(
            ["contact_point_id"],
            ["contact_points.id"],
            name=op.f("fk_whatsapp_opt_ins_contact_point_id_contact_points"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_whatsapp_opt_ins")),
        sa.UniqueConstraint("contact_point_id", name=op.f("uq_whatsapp_opt_ins_contact_point_id")),
    )


def downgrade() -> None:
    op.drop_table("whatsapp_opt_ins")
    op.drop_index("ix_outreach_items_recent", table_name="outreach_items")
    op.drop_index("ix_outreach_items_due", table_name="outreach_items")
    op.drop_index(op.f("ix_outreach_items_case_id"), table_name="outreach_items")
    op.drop_index(op.f("ix_outreach_items_batch_id"), table_name="outreach_items")
    op.drop_table("outreach_items")
    op.drop_table("outreach_batches")
