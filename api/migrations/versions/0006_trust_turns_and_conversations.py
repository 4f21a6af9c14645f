"""trust: one open conversation per contact, turn keys, deferred media

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import JSONType, UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = sa.text("closed_at IS NULL")
_MEDIA_STATES = ("stored", "pending", "refused")


def upgrade() -> None:
    # Before the unique index: of several open conversations of one contact on one channel
    # (the race this revision closes), the newest stays open, as the code already chose it.
    op.execute(
        """
        UPDATE conversations SET closed_at = CURRENT_TIMESTAMP
        WHERE closed_at IS NULL AND EXISTS (
            SELECT 1 FROM conversations AS newer
            WHERE newer.channel = conversations.channel
              AND newer.contact_point_id = conversations.contact_point_id
              AND newer.closed_at IS NULL
              AND newer.id > conversations.id
        )
        """
    )
    op.create_index(
        "uq_conversations_open_contact",
        "conversations",
        ["channel", "contact_point_id"],
        unique=True,
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    )

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("raw", JSONType, nullable=True))

    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "media_state",
                sa.Enum(
                    *_MEDIA_STATES,
                    name="mediastate",
                    native_enum=False,
                    create_constraint=True,
                    length=16,
                ),
                nullable=False,
                server_default="stored",
            )
        )
        batch_op.add_column(sa.Column("source_url", sa.String(length=1000), nullable=True))
        batch_op.add_column(
            sa.Column("fetch_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("fetch_next_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("fetch_lease_until", UTCDateTime(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_attachments_media_state"), ["media_state"], unique=False
        )
    op.execute("UPDATE attachments SET media_state = 'refused' WHERE refused_reason IS NOT NULL")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.alter_column("media_state", server_default=None)
        batch_op.alter_column("fetch_attempts", server_default=None)

    op.create_table(
        "action_executions",
        sa.Column("sender_id", sa.String(length=255), nullable=False),
        sa.Column("turn_key", sa.String(length=255), nullable=False),
        sa.Column("action_name", sa.String(length=100), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("response", JSONType, nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_executions")),
        sa.UniqueConstraint(
            "sender_id",
            "turn_key",
            "action_name",
            "occurrence",
            name=op.f("uq_action_executions_sender_id_turn_key_action_name_occurrence"),
        ),
    )
    op.create_index(
        "ix_action_executions_created_at", "action_executions", ["created_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_action_executions_created_at", table_name="action_executions")
    op.drop_table("action_executions")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_media_state"))
        # SQLite's batch copy would otherwise keep the CHECK of the dropped column.
        batch_op.drop_constraint(op.f("ck_attachments_mediastate"), type_="check")
        batch_op.drop_column("fetch_lease_until")
        batch_op.drop_column("fetch_next_at")
        batch_op.drop_column("fetch_attempts")
        batch_op.drop_column("source_url")
        batch_op.drop_column("media_state")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("raw")
    op.drop_index(
        "uq_conversations_open_contact",
        table_name="conversations",
        postgresql_where=_OPEN,
        sqlite_where=_OPEN,
    )
