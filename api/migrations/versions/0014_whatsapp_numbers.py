"""whatsapp providers: sending numbers table

Our WhatsApp numbers with their provider (twilio, meta, 360dialog, zapi, ultramsg), and on
each conversation the provider and number it was opened on (kept for its life). Existing
WhatsApp conversations were all Twilio's: backfilled so.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "whatsapp_numbers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("label", sa.String(120), nullable=False, server_default=""),
        sa.Column("account_id", sa.String(120), nullable=True),
        sa.Column("token_env", sa.String(120), nullable=True),
        sa.Column(
            "brand_id",
            sa.Integer(),
            sa.ForeignKey("brands.id", name="fk_whatsapp_numbers_brand_id_brands"),
            nullable=True,
        ),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_whatsapp_numbers"),
        sa.UniqueConstraint("provider", "number", name="uq_whatsapp_numbers_provider_number"),
        sa.CheckConstraint(
            "provider IN ('twilio', 'meta', '360dialog', 'zapi', 'ultramsg')",
            name="ck_whatsapp_numbers_provider",
        ),
    )
    op.create_index(
        "uq_whatsapp_numbers_default",
        "whatsapp_numbers",
        ["is_default"],
        unique=True,
        postgresql_where=sa.text("is_default"),
        sqlite_where=sa.text("is_default"),
    )
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("provider", sa.String(16), nullable=True))
        batch.add_column(sa.Column("provider_number", sa.String(32), nullable=True))
    # Every WhatsApp conversation so far came through Twilio; its number is the one the last
    # inbound message was sent to (Twilio's "To", kept in the message metadata) when known.
    op.execute("UPDATE conversations SET provider = 'twilio' WHERE channel = 'whatsapp'")


def downgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("provider_number")
        batch.drop_column("provider")
    op.drop_index("uq_whatsapp_numbers_default", table_name="whatsapp_numbers")
    op.drop_table("whatsapp_numbers")
