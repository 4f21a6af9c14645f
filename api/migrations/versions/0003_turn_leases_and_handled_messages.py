"""turn leases and handled messages

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 17:30:30.338138
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("turn_lease_token", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("turn_lease_until", UTCDateTime(), nullable=True))

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handled_at", UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_handled_at"), ["handled_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_handled_at"))
        batch_op.drop_column("handled_at")

    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("turn_lease_until")
        batch_op.drop_column("turn_lease_token")
