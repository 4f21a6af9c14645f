"""What every mailbox connector shares: the protocol, the errors, a snapshot of the row, and the
one function that hands a raw mail to the e-mail pipeline (so parsing, classification, bounce
mapping, matching, threading and the Message-ID dedup are the same for IMAP, Gmail and Graph)."""

from __future__ import annotations

import datetime as dt
import email.utils
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.email.ingest import Ingested, Outcome, do_ingest_email, do_ingest_unparseable
from api.channels.mailboxes.models import Mailbox, MailboxProvider
from api.conversations.models import Channel, Message
from api.db import get_sessionmaker, unit_of_work
from api.errors import ChannelDeliveryError, ProviderError
from api.outbox.senders import Envelope, SendResult


class MailboxError(ProviderError):
    """The provider refused a call or could not be reached; `permanent` when trying the same
    call again cannot help (a 4xx about the request itself)."""

    code = "mailbox_error"

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailboxAuthError(MailboxError):
    """Credentials are missing, wrong or revoked: an operator must act."""

    code = "mailbox_auth_error"


class CursorExpired(MailboxError):
    """The stored cursor is too old for the provider (Gmail 404, Graph 410): resync."""

    code = "mailbox_cursor_expired"


class Throttled(MailboxError):
    """429/503 with Retry-After: no call to this mailbox before `retry_after` seconds."""

    code = "mailbox_throttled"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class MailboxRef:
    """A snapshot of one mailbox row, safe to use outside its session."""

    id: int
    name: str
    provider: MailboxProvider
    address: str
    config: dict[str, Any]
    credentials_env: dict[str, Any]
    cursor: str | None
    push_id: str | None
    push_expires_at: dt.datetime | None

    @classmethod
    def of(cls, row: Mailbox) -> MailboxRef:
        return cls(
            id=row.id,
            name=row.name,
            provider=row.provider,
            address=row.address,
            config=dict(row.config or {}),
            credentials_env=dict(row.credentials_env or {}),
            cursor=row.cursor,
            push_id=row.push_id,
            push_expires_at=row.push_expires_at,
        )


@dataclass
class SyncStats:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    bounces: int = 0
    unparsed: int = 0
    full_resync: bool = False
    cursor: str | None = None
    conversations: set[int] = field(default_factory=set)

    def count(self, result: Ingested) -> None:
        self.fetched += 1
        if result.outcome is Outcome.STORED:
            self.stored += 1
            if result.conversation_id is not None:
                self.conversations.add(result.conversation_id)
        elif result.outcome is Outcome.BOUNCE:
            self.bounces += 1
        else:
            self.duplicates += 1


class Connector(Protocol):
    """One provider. `sync` ingests everything after the stored cursor and saves the new one;
    `renew_push` (re)creates the watch/subscription when it is missing or about to expire;
    `send` delivers one outbound envelope as a reply in the provider's thread."""

    provider: MailboxProvider

    async def sync(
        self, box: MailboxRef, *, last_synced_at: dt.datetime | None = None
    ) -> SyncStats: ...

    async def renew_push(self, box: MailboxRef) -> None: ...

    async def send(self, box: MailboxRef, envelope: Envelope) -> SendResult: ...


async def ingest_raw(
    raw: bytes,
    *,
    box: MailboxRef,
    stats: SyncStats,
    received_at: dt.datetime | None = None,
    ref: dict[str, Any] | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> Ingested:
    """One raw RFC 5322 mail into the shared pipeline, in its own transaction. `ref` is the
    provider's handle on it (Gmail id/threadId, Graph id/conversationId), kept in the message's
    meta["mailbox"] so a reply goes back through the same mailbox, in the same thread."""
    source: dict[str, Any] = {"mailbox_id": box.id, "provider": str(box.provider), **(ref or {})}
    maker = maker or get_sessionmaker()
    try:
        async with unit_of_work(maker) as session:
            result = await do_ingest_email(session, raw, received_at=received_at, mailbox=source)
    except (OSError, TimeoutError):
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("sqlalchemy"):
            raise  # the database is down: abort the pass, the cursor has not moved
        async with unit_of_work(maker) as session:
            result = await do_ingest_unparseable(
                session, raw, error=f"{type(exc).__name__}: {exc}", received_at=received_at,
                mailbox=source,
            )  # fmt: skip
        stats.unparsed += 1
        return result
    stats.count(result)
    return result


async def is_known(
    message_id: str | None, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> bool:
    """Whether a mail with this Message-ID is already stored (through any connector), so a
    provider that lists it again (Graph's delta after a flag change, a resync) need not be
    asked for its content: an indexed lookup on the messages' unique (channel, provider_id)."""
    if not message_id:
        return False
    async with unit_of_work(maker or get_sessionmaker()) as session:
        found = await session.scalar(
            sa.select(Message.id)
            .where(Message.channel == Channel.EMAIL, Message.provider_id == message_id)
            .limit(1)
        )
    return found is not None


def parse_retry_after(value: str | None, *, default: float = 30.0) -> float:
    """Retry-After as seconds (RFC 9110: delta-seconds or an HTTP date), at least 1 s."""
    if not value:
        return default
    value = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return max(1.0, float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return default
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(1.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def delivery_error(exc: MailboxError) -> ChannelDeliveryError:
    """A connector failure as the outbox understands it."""
    if isinstance(exc, Throttled):
        return ChannelDeliveryError(
            str(exc)[:400], retryable=True, retry_after_seconds=exc.retry_after
        )
    return ChannelDeliveryError(str(exc)[:400], retryable=not exc.permanent)
