"""One table for every mailbox we read mail from, whatever the provider.

Secrets never live here: `credentials_env` names the environment variables that hold them. The
one exception is a rotated OAuth refresh token (Google may hand out a new one on refresh and
retire the old): it must survive a restart, so it is stored sealed with SECRET_KEY (Fernet) in
`token_sealed`, and is preferred over the environment's copy from then on.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin, utcnow
from api.enums import str_enum


class MailboxProvider(enum.StrEnum):
    IMAP = "imap"
    GMAIL = "gmail"
    GRAPH = "graph"


class MailboxState(enum.StrEnum):
    ACTIVE = "active"  # syncing normally
    FAILING = "failing"  # the last pass failed; retried with backoff
    THROTTLED = "throttled"  # the provider asked us to wait (Retry-After)
    DISABLED = "disabled"  # an operator turned it off


class Mailbox(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "mailboxes"
    # Not unique by address: one IMAP account may be read in several folders.
    __table_args__ = (
        sa.Index("ix_mailboxes_due", "state", "next_attempt_at"),
        sa.Index("ix_mailboxes_address", "address"),
    )

    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    provider: Mapped[MailboxProvider] = mapped_column(str_enum(MailboxProvider, 16))
    address: Mapped[str] = mapped_column(sa.String(320))
    # Non-secret settings: hosts, folder, client id, tenant, API base URLs, Pub/Sub topic.
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # {"client_secret": "ENV_VAR_NAME", "refresh_token": "ENV_VAR_NAME", "password": ...}
    credentials_env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    token_sealed: Mapped[str | None] = mapped_column(sa.Text)
    # Where the next sync starts: Gmail historyId, Graph deltaLink, IMAP "uidvalidity:uid".
    cursor: Mapped[str | None] = mapped_column(sa.Text)
    state: Mapped[MailboxState] = mapped_column(
        str_enum(MailboxState, 16), default=MailboxState.ACTIVE
    )
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    failures: Mapped[int] = mapped_column(default=0)
    last_synced_at: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A push hint (Pub/Sub, Graph notification) asks for a sync before the next poll.
    sync_requested_at: Mapped[dt.datetime | None]
    # Gmail watch / Graph subscription: id, expiry, and the hash of Graph's clientState.
    push_id: Mapped[str | None] = mapped_column(sa.String(200))
    push_expires_at: Mapped[dt.datetime | None]
    push_secret_hash: Mapped[str | None] = mapped_column(sa.String(64))
    # One worker syncs a mailbox at a time (a lease, so a dead worker gives it back).
    locked_until: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
