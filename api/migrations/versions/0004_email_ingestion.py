"""email ingestion: IMAP cursors and case suggestions for unmatched mail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_imap_cursors",
        sa.Column("account", sa.String(length=320), nullable=False),
        sa.Column("folder", sa.String(length=200), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("last_uid", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_imap_cursors")),
        sa.UniqueConstraint(
            "account",
            "folder",
            "uidvalidity",
            name=op.f("uq_email_imap_cursors_account_folder_uidvalidity"),
        ),
    )
    op.create_table(
        "email_match_suggestions",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Double(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "suggested",
                "confirmed",
                "rejected",
                name="suggestionstate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_email_match_suggestions_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["analysts.id"],
            name=op.f("fk_email_match_suggestions_decided_by_analysts"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_email_match_suggestions_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_match_suggestions")),
        sa.UniqueConstraint(
            "message_id", "case_id", name=op.f("uq_email_match_suggestions_message_id_case_id")
        ),
    )
    with op.batch_alter_table("email_match_suggestions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_email_match_suggestions_case_id"), ["case_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_match_suggestions_message_id"), ["message_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_email_match_suggestions_state"), ["state"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("email_match_suggestions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_email_match_suggestions_state"))
        batch_op.drop_index(batch_op.f("ix_email_match_suggestions_message_id"))
        batch_op.drop_index(batch_op.f("ix_email_match_suggestions_case_id"))

    op.drop_table("email_match_suggestions")
    op.drop_table("email_imap_cursors")
