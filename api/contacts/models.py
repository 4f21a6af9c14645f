"""Infringers and their contact points (phones, e-mail addresses, e-mail domains)."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class InfringerKind(enum.StrEnum):
    PERSON = "person"
    COMPANY = "company"


class ContactKind(enum.StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    EMAIL_DOMAIN = "email_domain"


class Infringer(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "infringers"
    # Search by a piece of the name (trigram on PostgreSQL).
    __table_args__ = (
        sa.Index("ix_infringers_name", "name"),
        sa.Index(
            "ix_infringers_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    kind: Mapped[InfringerKind] = mapped_column(str_enum(InfringerKind, 16))
    name: Mapped[str] = mapped_column(sa.String(200))
    # Normalized CPF (11 digits) or CNPJ (14 chars, alphanumeric since 2026), validated.
    document: Mapped[str | None] = mapped_column(sa.String(14), unique=True)
    # LGPD: a supervisor restricted the processing of this person's data (no messages leave).
    processing_restricted_at: Mapped[dt.datetime | None]
    processing_restricted_by: Mapped[str | None] = mapped_column(sa.String(120))

    contacts: Mapped[list[ContactPoint]] = relationship(back_populates="infringer")


class ContactPoint(IdMixin, CreatedAtMixin, Base):
    """One address. Without an infringer it sits in the unmatched queue."""

    __tablename__ = "contact_points"
    __table_args__ = (
        sa.UniqueConstraint("kind", "value"),
        sa.Index(
            "ix_contact_points_value_trgm",
            "value",
            postgresql_using="gin",
            postgresql_ops={"value": "gin_trgm_ops"},
        ),
    )

    kind: Mapped[ContactKind] = mapped_column(str_enum(ContactKind, 16))
    # E.164 for phones, lowercased address or domain for e-mail.
    value: Mapped[str] = mapped_column(sa.String(254))
    infringer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("infringers.id", ondelete="SET NULL"), index=True
    )
    opted_out_at: Mapped[dt.datetime | None]
    opt_out_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # Who set the opt-out (the infringer through the bot, or an analyst's name).
    opted_out_by: Mapped[str | None] = mapped_column(sa.String(120))

    infringer: Mapped[Infringer | None] = relationship(back_populates="contacts")

    @property
    def is_unmatched(self) -> bool:
        return self.infringer_id is None
