"""payments and notice token

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 17:25:20.566677
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payment_requests",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("public_token", sa.String(length=64), nullable=False),
        sa.Column("total_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("installments_count", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("superseded_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_payment_requests_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_requests")),
        sa.UniqueConstraint("public_token", name=op.f("uq_payment_requests_public_token")),
    )
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_requests_case_id"), ["case_id"], unique=False)

    op.create_table(
        "installments",
        sa.Column("payment_request_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("txid", sa.String(length=25), nullable=False),
        sa.Column("pix_payload", sa.Text(), nullable=False),
        sa.Column("boleto_barcode", sa.String(length=44), nullable=False),
        sa.Column("boleto_line", sa.String(length=60), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "open",
                "paid",
                "overdue",
                "cancelled",
                name="installmentstatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("paid_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["payment_request_id"],
            ["payment_requests.id"],
            name=op.f("fk_installments_payment_request_id_payment_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_installments")),
        sa.UniqueConstraint(
            "payment_request_id", "number", name=op.f("uq_installments_payment_request_id_number")
        ),
        sa.UniqueConstraint("txid", name=op.f("uq_installments_txid")),
    )
    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_installments_payment_request_id"), ["payment_request_id"], unique=False
        )

    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("notice_token", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_cases_notice_token"), ["notice_token"])

    # Existing cases get an unguessable token too.
    random_token = (
        "md5(random()::text || clock_timestamp()::text || id::text)"
        if op.get_bind().dialect.name == "postgresql"
        else "lower(hex(randomblob(24)))"
    )
    op.execute(f"UPDATE cases SET notice_token = {random_token} WHERE notice_token IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_cases_notice_token"), type_="unique")
        batch_op.drop_column("notice_token")

    with op.batch_alter_table("installments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_installments_payment_request_id"))

    op.drop_table("installments")
    with op.batch_alter_table("payment_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_requests_case_id"))

    op.drop_table("payment_requests")
