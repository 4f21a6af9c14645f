"""Our WhatsApp sending numbers, each with the provider it is reached through."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin


class Provider(enum.StrEnum):
    TWILIO = "twilio"
    META = "meta"
    D360 = "360dialog"
    ZAPI = "zapi"
    ULTRAMSG = "ultramsg"

    @property
    def unofficial(self) -> bool:
        """Drives a WhatsApp Web session: no template approval, the number may be banned."""
        return self in (Provider.ZAPI, Provider.ULTRAMSG)

    @property
    def cloud_api(self) -> bool:
        """Speaks Meta's Cloud API payloads (directly or through 360dialog)."""
        return self in (Provider.META, Provider.D360)


_ACTIVE = sa.text("active")


class WhatsAppNumber(IdMixin, CreatedAtMixin, Base):
    """One of our numbers. Secrets never live here: `token_env` names the environment variable
    holding this number's token (empty: the provider's own variable, e.g. META_ACCESS_TOKEN)."""

    __tablename__ = "whatsapp_numbers"
    __table_args__ = (
        sa.UniqueConstraint("provider", "number"),
        # One default number at most (the one new conversations without a number use).
        sa.Index(
            "uq_whatsapp_numbers_default",
            "is_default",
            unique=True,
            postgresql_where=sa.text("is_default"),
            sqlite_where=sa.text("is_default"),
        ),
    )

    provider: Mapped[str] = mapped_column(sa.String(16))
    number: Mapped[str] = mapped_column(sa.String(32))  # E.164
    label: Mapped[str] = mapped_column(sa.String(120), default="")
    # The provider's account for this number: Meta/360dialog phone-number id, Z-API or UltraMsg
    # instance id; empty for Twilio (the number itself is the account's sender).
    account_id: Mapped[str | None] = mapped_column(sa.String(120))
    token_env: Mapped[str | None] = mapped_column(sa.String(120))
    brand_id: Mapped[int | None] = mapped_column(sa.ForeignKey("brands.id"))
    is_default: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime | None]
