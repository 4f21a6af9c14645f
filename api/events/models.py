"""The `events` table (the durable, typed stream) and `event_consumers` (one cursor each)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, utcnow

# SQLite only makes an INTEGER PRIMARY KEY the auto-increasing rowid.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class StoredEvent(Base):
    """One event, written in the transaction of the change it records; never updated.

    `tx_id` is the writing transaction's id on PostgreSQL (`pg_current_xact_id()`, filled in by
    the database) and 0 on SQLite, whose writers are serialised: consumers read in
    (tx_id, id) order, and only below the oldest transaction still running (see consumers.py).
    """

    __tablename__ = "events"
    __table_args__ = (sa.Index("ix_events_tx_id_id", "tx_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tx_id: Mapped[int] = mapped_column(sa.BigInteger, server_default=sa.FetchedValue())
    kind: Mapped[str] = mapped_column(sa.String(40), index=True)
    case_id: Mapped[int | None] = mapped_column(index=True)
    conversation_id: Mapped[int | None] = mapped_column(index=True)
    channel: Mapped[str | None] = mapped_column(sa.String(16))
    actor_kind: Mapped[str] = mapped_column(sa.String(16))
    actor_id: Mapped[int | None]
    occurred_at: Mapped[dt.datetime]
    recorded_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    payload: Mapped[dict[str, Any]]


class EventConsumer(Base):
    """Where a durable consumer is in the stream: the last (tx_id, id) it handled."""

    __tablename__ = "event_consumers"

    name: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    last_tx_id: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    last_event_id: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
