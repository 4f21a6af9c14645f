"""brand discount policy: a maximum discount (% of the case's amount) and/or an absolute floor

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # batch_alter_table recreates the table on SQLite (render_as_batch in env.py) and is a
    # plain ALTER TABLE on PostgreSQL.
    with op.batch_alter_table("brands") as batch:
        batch.add_column(
            sa.Column("max_discount_percent", sa.Numeric(precision=5, scale=2), nullable=True)
        )
        batch.alter_column(
            "floor_amount", existing_type=sa.Numeric(precision=12, scale=2), nullable=True
        )
        batch.create_check_constraint(
            op.f("ck_brands_max_discount_in_range"),
            "max_discount_percent >= 0 AND max_discount_percent <= 100",
        )


def downgrade() -> None:
    # A brand without a floor gets the least its discount allowed on its base amount.
    op.execute(
        "UPDATE brands SET floor_amount = base_amount * (100 - COALESCE(max_discount_percent, 0))"
        " / 100 WHERE floor_amount IS NULL"
    )
    with op.batch_alter_table("brands") as batch:
        batch.drop_constraint(op.f("ck_brands_max_discount_in_range"), type_="check")
        batch.alter_column(
            "floor_amount", existing_type=sa.Numeric(precision=12, scale=2), nullable=False
        )
        batch.drop_column("max_discount_percent")
