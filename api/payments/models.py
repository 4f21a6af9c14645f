"""Payment requests sent to an infringer and their installments (each open, paid or overdue)."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class InstallmentStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    OVERDUE = "overdue"
    CANCELLED = "cancelled"  # replaced by a fresh payment request


class PaymentRequest(IdMixin, CreatedAtMixin, Base):
    """What we asked the infringer to pay, reachable through an unguessable public link."""

    __tablename__ = "payment_requests"

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    public_token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    total_amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    installments_count: Mapped[int]
    provider: Mapped[str] = mapped_column(sa.String(40))
    superseded_at: Mapped[dt.datetime | None]

    installments: Mapped[list[Installment]] = relationship(
        back_populates="payment_request", order_by="Installment.number", lazy="selectin"
    )


class Installment(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "installments"
    __table_args__ = (sa.UniqueConstraint("payment_request_id", "number"),)

    payment_request_id: Mapped[int] = mapped_column(
        sa.ForeignKey("payment_requests.id"), index=True
    )
    number: Mapped[int]
    amount: Mapped[Decimal] = mapped_column(sa.Numeric(12, 2))
    due_date: Mapped[dt.date]
    txid: Mapped[str] = mapped_column(sa.String(25), unique=True)
    pix_payload: Mapped[str] = mapped_column(sa.Text)
    boleto_barcode: Mapped[str] = mapped_column(sa.String(44))
    boleto_line: Mapped[str] = mapped_column(sa.String(60))
    status: Mapped[InstallmentStatus] = mapped_column(
        str_enum(InstallmentStatus, 16), default=InstallmentStatus.OPEN
    )
    paid_at: Mapped[dt.datetime | None]

    payment_request: Mapped[PaymentRequest] = relationship(back_populates="installments")
