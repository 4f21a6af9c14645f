"""Conversations, messages (with their NLU reading) and attachments."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class Channel(enum.StrEnum):
    WHATSAPP = "whatsapp"
    EMAIL = "email"


class Holder(enum.StrEnum):
    BOT = "bot"
    WAITING_HUMAN = "waiting_human"
    HUMAN = "human"


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class AuthorKind(enum.StrEnum):
    INFRINGER = "infringer"
    BOT = "bot"
    ANALYST = "analyst"
    SYSTEM = "system"


class DeliveryStatus(enum.StrEnum):
    RECEIVED = "received"  # inbound
    PENDING = "pending"  # in our outbox
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"
    UNDELIVERED = "undelivered"


class MediaState(enum.StrEnum):
    """Where an attachment's file is: fetched and stored, still to fetch, or refused for good."""

    STORED = "stored"
    PENDING = "pending"
    REFUSED = "refused"


_OPEN = sa.text("closed_at IS NULL")


class Conversation(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        sa.Index("ix_conversations_channel_address", "channel", "address"),
        # One open conversation per (channel, contact), enforced by the database: a first
        # message and its replay arriving together must not open two (the loser re-reads).
        # The inbox: open conversations by holder, oldest hand-off first (migration 0013).
        sa.Index(
            "ix_conversations_open_holder_handoff",
            "holder",
            "handoff_at",
            "id",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        sa.Index(
            "uq_conversations_open_contact",
            "channel",
            "contact_point_id",
            unique=True,
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
    )

    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    contact_point_id: Mapped[int] = mapped_column(sa.ForeignKey("contact_points.id"), index=True)
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    # The infringer's address on the channel (E.164 phone or e-mail address).
    address: Mapped[str] = mapped_column(sa.String(254))
    holder: Mapped[Holder] = mapped_column(str_enum(Holder, 16), default=Holder.BOT)
    analyst_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
    handoff_reason: Mapped[str | None] = mapped_column(sa.String(200))
    handoff_at: Mapped[dt.datetime | None]
    last_inbound_at: Mapped[dt.datetime | None]
    last_outbound_at: Mapped[dt.datetime | None]
    follow_up_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    # One bot turn at a time per conversation, across processes: a short lease on this row.
    turn_lease_token: Mapped[str | None] = mapped_column(sa.String(36))
    turn_lease_until: Mapped[dt.datetime | None]
    # WhatsApp: the provider (twilio, meta, 360dialog, zapi, ultramsg) and our number the
    # conversation was opened on, kept for its life (api/channels/numbers).
    provider: Mapped[str | None] = mapped_column(sa.String(16))
    provider_number: Mapped[str | None] = mapped_column(sa.String(32))

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation", order_by="Message.id"
    )


class Message(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "messages"
    # Idempotency for inbound webhooks and polls: a provider id is stored once per channel.
    __table_args__ = (sa.UniqueConstraint("channel", "provider_id"),)

    conversation_id: Mapped[int] = mapped_column(sa.ForeignKey("conversations.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id"), index=True)
    direction: Mapped[Direction] = mapped_column(str_enum(Direction, 16))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel, 16))
    author_kind: Mapped[AuthorKind] = mapped_column(str_enum(AuthorKind, 16))
    analyst_id: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    subject: Mapped[str | None] = mapped_column(sa.String(500))
    provider_id: Mapped[str | None] = mapped_column(sa.String(255))
    delivery_status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus, 16))
    delivery_error: Mapped[str | None] = mapped_column(sa.String(500))
    status_updated_at: Mapped[dt.datetime | None]
    # NLU reading of an inbound turn.
    intent: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    intent_confidence: Mapped[float | None]
    entities: Mapped[list[dict[str, Any]] | None] = mapped_column(sa.JSON)
    meta: Mapped[dict[str, Any] | None]
    # Inbound: the provider's payload as it arrived (Twilio's form), kept before anything else.
    raw: Mapped[dict[str, Any] | None]
    # Inbound: when the turn was dealt with (bot answered, person notified, or nothing to do).
    handled_at: Mapped[dt.datetime | None] = mapped_column(index=True)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(
        back_populates="message", order_by="Attachment.id"
    )


class Attachment(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "attachments"

    message_id: Mapped[int] = mapped_column(sa.ForeignKey("messages.id"), index=True)
    filename: Mapped[str | None] = mapped_column(sa.String(255))
    content_type: Mapped[str] = mapped_column(sa.String(120))
    size: Mapped[int]
    sha256: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    storage_path: Mapped[str | None] = mapped_column(sa.String(500))
    # Set when the file was refused (too big, unreadable); the row keeps what arrived.
    refused_reason: Mapped[str | None] = mapped_column(sa.String(200))
    # Media fetched after the webhook is acknowledged (by the worker, with retries): where it
    # is, how often it was tried and when to try again. The bot turn waits for PENDING media.
    media_state: Mapped[MediaState] = mapped_column(
        str_enum(MediaState, 16), default=MediaState.STORED, index=True
    )
    source_url: Mapped[str | None] = mapped_column(sa.String(1000))
    fetch_attempts: Mapped[int] = mapped_column(default=0)
    fetch_next_at: Mapped[dt.datetime | None]
    fetch_lease_until: Mapped[dt.datetime | None]

    message: Mapped[Message] = relationship(back_populates="attachments")
