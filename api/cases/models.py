"""Cases, listings and the per-year case-reference counter."""

from __future__ import annotations

import datetime as dt
import enum
import secrets
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.brands.models import Brand
from api.cases.lifecycle import CaseStatus
from api.contacts.models import Infringer
from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class ListingStatus(enum.StrEnum):
    ACTIVE = "active"
    REMOVAL_PENDING = "removal_pending"  # the seller says it is down; not verified yet
    REMOVED = "removed"
    RELISTED = "relisted"


class Case(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "cases"
    __table_args__ = (
        sa.Index("ix_cases_created_at_id", "created_at", "id"),
        sa.Index("ix_cases_response_deadline", "response_deadline"),
    )

    reference: Mapped[str] = mapped_column(sa.String(20), unique=True)
    brand_id: Mapped[int] = mapped_column(sa.ForeignKey("brands.id"), index=True)
    infringer_id: Mapped[int] = mapped_column(sa.ForeignKey("infringers.id"), index=True)
    status: Mapped[CaseStatus] = mapped_column(
        str_enum(CaseStatus, 24), default=CaseStatus.DETECTADO, index=True
    )
    status_changed_at: Mapped[dt.datetime | None]
    close_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # What the detection tool or the analyst claimed; the brand policy bounds any offer.
    claimed_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    agreed_amount: Mapped[Decimal | None] = mapped_column(sa.Numeric(12, 2))
    agreed_installments: Mapped[int | None]
    notice_sent_at: Mapped[dt.datetime | None]
    response_deadline: Mapped[dt.date | None]
    notice_url: Mapped[str | None] = mapped_column(sa.String(500))
    # Unguessable id of the public notice page (/notificacao/<token>) sent to the infringer.
    notice_token: Mapped[str | None] = mapped_column(
        sa.String(64), unique=True, default=lambda: secrets.token_urlsafe(24)
    )
    # Natural key of an imported row without a reference, so a re-import updates, not duplicates.
    import_key: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    updated_at: Mapped[dt.datetime | None]
    # The responsible analyst (api/operations/ownership.py): alerts go to them.
    assignee_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL"), index=True
    )
    # The day an analyst wants to look at the case again (the cases list filters on it).
    follow_up_on: Mapped[dt.date | None] = mapped_column(index=True)

    brand: Mapped[Brand] = relationship(lazy="joined")
    infringer: Mapped[Infringer] = relationship(lazy="joined")
    listings: Mapped[list[Listing]] = relationship(
        back_populates="case", order_by="Listing.id", cascade="all, delete-orphan"
    )


class Listing(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "listings"
    __table_args__ = (
        sa.UniqueConstraint("case_id", "url"),
        # Search by a piece of a listing URL (trigram on PostgreSQL).
        sa.Index(
            "ix_listings_url_trgm",
            "url",
            postgresql_using="gin",
            postgresql_ops={"url": "gin_trgm_ops"},
        ),
    )

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(sa.String(1000))
    marketplace: Mapped[str] = mapped_column(sa.String(40))
    status: Mapped[ListingStatus] = mapped_column(
        str_enum(ListingStatus, 20), default=ListingStatus.ACTIVE
    )
    status_changed_at: Mapped[dt.datetime | None]

    case: Mapped[Case] = relationship(back_populates="listings")


class CaseRefCounter(Base):
    """Last sequence number issued per year; bumped with an atomic UPDATE … RETURNING."""

    __tablename__ = "case_ref_counters"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(default=0)
