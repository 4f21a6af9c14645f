"""A client brand and the settlement policy the bot must stay within."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin


class Brand(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "brands"
    __table_args__ = (
        sa.CheckConstraint("floor_amount <= base_amount", name="floor_not_above_base"),
        sa.CheckConstraint("max_installments >= 1", name="installments_positive"),
        sa.CheckConstraint(
            "max_discount_percent >= 0 AND max_discount_percent <= 100",
            name="max_discount_in_range",
        ),
    )

    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    legal_name: Mapped[str | None] = mapped_column(sa.String(200))
    # Settlement policy (api.negotiation.policy): the only amounts and terms the bot may accept.
    # base_amount is the amount of a case imported without one; the discount is bounded by
    # max_discount_percent (of the case's amount) and/or the absolute floor_amount.
    base_amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    floor_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    max_discount_percent: Mapped[Decimal | None] = mapped_column(sa.Numeric(5, 2))
    max_installments: Mapped[int] = mapped_column(default=1)
    min_installment_amount: Mapped[Decimal] = mapped_column(
        sa.Numeric(12, 2), default=Decimal("100.00")
    )
    response_days: Mapped[int] = mapped_column(default=10)
    payment_instructions: Mapped[str] = mapped_column(sa.Text, default="")
    pix_key: Mapped[str | None] = mapped_column(sa.String(120))
    payee_name: Mapped[str | None] = mapped_column(sa.String(120))
    payee_city: Mapped[str | None] = mapped_column(sa.String(60))
    updated_at: Mapped[dt.datetime | None]
