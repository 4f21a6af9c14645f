"""Fetching WhatsApp media after the webhook was acknowledged: retried with backoff, never lost.

The webhook stores the message with PENDING attachments (the provider's URL, the raw form) and
answers Twilio at once. The process that received it fetches the files right after the commit
(the inbound pipeline's turn request, api.engine.dispatch); the worker fetches whatever is still
due (a crash between the acknowledgement and the download,
a transient failure waiting for its next attempt). Attempts are claimed with a lease on the row,
so two processes never download one file at the same time. A transient failure (timeout,
network error, HTTP 5xx/429) is tried again up to MAX_ATTEMPTS times; a permanent one (404, too
big) is recorded with its reason on the attachment, the message and the timeline. The bot turn
of a message waits until none of its media is PENDING (api.engine.turns).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.whatsapp_twilio.adapter import MediaRef
from api.channels.whatsapp_twilio.media import MEDIA_TIMEOUT, download_one
from api.config import Settings, get_settings
from api.conversations.inbound import InboundAttachment
from api.conversations.models import Attachment, Conversation, MediaState, Message
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.storage import check_size, store_blob
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
FIRST_RETRY_SECONDS = 2.0
MAX_RETRY_SECONDS = 10 * 60.0
# Longer than one download's budget (media.MEDIA_BUDGET_SECONDS): a row whose fetcher died is
# taken again once this has passed.
FETCH_LEASE = dt.timedelta(seconds=60)


class MediaDownloader(Protocol):
    """Another provider's download of a referenced file (api.channels.numbers.sender)."""

    async def __call__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        content_type: str | None,
        meta: Mapping[str, object],
        max_bytes: int,
        name: str,
    ) -> InboundAttachment: ...


# The WhatsApp providers other than Twilio, by the name their messages carry in meta.provider;
# the claim, retries and records here serve them all.
_DOWNLOADERS: dict[str, MediaDownloader] = {}


def register_media_downloader(provider: str, downloader: MediaDownloader) -> None:
    _DOWNLOADERS[provider] = downloader


def retry_delay(attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: 2, 4, 8 … seconds, capped at 10 minutes."""
    return dt.timedelta(seconds=min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (attempts - 1)))


@dataclass(frozen=True)
class _Claimed:
    attachment_id: int
    message_id: int
    ref: MediaRef
    message_sid: str
    attempt: int
    meta: dict[str, object] = field(default_factory=dict)


async def _claim(
    maker: async_sessionmaker[AsyncSession], *, message_id: int | None, limit: int
) -> list[_Claimed]:
    now = utcnow()
    async with unit_of_work(maker) as session:
        query = (
            sa.select(Attachment)
            .where(
                Attachment.media_state == MediaState.PENDING,
                Attachment.fetch_next_at <= now,
                sa.or_(Attachment.fetch_lease_until.is_(None), Attachment.fetch_lease_until < now),
            )
            .order_by(Attachment.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if message_id is not None:
            query = query.where(Attachment.message_id == message_id)
        rows = list((await session.scalars(query)).all())
        claimed: list[_Claimed] = []
        for row in rows:
            row.fetch_lease_until = now + FETCH_LEASE
            row.fetch_attempts += 1
            message = await session.get(Message, row.message_id)
            assert message is not None and row.source_url is not None
            siblings = list(
                await session.scalars(
                    sa.select(Attachment.id)
                    .where(Attachment.message_id == row.message_id)
                    .order_by(Attachment.id)
                )
            )
            claimed.append(
                _Claimed(
                    attachment_id=row.id,
                    message_id=row.message_id,
                    ref=MediaRef(
                        index=siblings.index(row.id),
                        url=row.source_url,
                        content_type=None
                        if row.content_type == "application/octet-stream"
                        else row.content_type,
                    ),
                    message_sid=message.provider_id or str(message.id),
                    attempt=row.fetch_attempts,
                    meta=dict(message.meta or {}),
                )
            )
        return claimed


async def _record(
    maker: async_sessionmaker[AsyncSession],
    claimed: _Claimed,
    result: InboundAttachment,
) -> int | None:
    """Store what one attempt gave; returns the conversation id when the message's media are
    all settled (its turn may run), else None."""
    async with unit_of_work(maker) as session:
        row = await session.get(Attachment, claimed.attachment_id)
        if row is None or row.media_state is not MediaState.PENDING:
            return None  # settled by another process meanwhile
        row.fetch_lease_until = None
        reason = result.refused_reason
        if result.data is not None:
            reason = check_size(len(result.data))
        if result.data is not None and reason is None:
            blob = store_blob(result.data, result.content_type)
            row.media_state = MediaState.STORED
            row.content_type = blob.content_type
            row.size = blob.size
            row.sha256 = blob.sha256
            row.storage_path = blob.path
            row.filename = result.filename or row.filename
            row.fetch_next_at = None
        elif result.retryable and claimed.attempt < MAX_ATTEMPTS:
            row.fetch_next_at = utcnow() + retry_delay(claimed.attempt)
            log.info(
                "media %s of message %s: attempt %s failed (%s); retrying",
                claimed.ref.index,
                claimed.message_id,
                claimed.attempt,
                reason,
            )
            return None
        else:
            final = reason or "arquivo não recebido"
            if result.retryable:
                final = f"{final}; desistimos após {claimed.attempt} tentativas"
            await _record_refusal(session, row, final[:200], result)
        await session.flush()
        pending = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Attachment)
            .where(
                Attachment.message_id == claimed.message_id,
                Attachment.media_state == MediaState.PENDING,
            )
        )
        if pending:
            return None
        message = await session.get(Message, claimed.message_id)
        return message.conversation_id if message is not None else None


async def _record_refusal(
    session: AsyncSession, row: Attachment, reason: str, result: InboundAttachment
) -> None:
    row.media_state = MediaState.REFUSED
    row.refused_reason = reason
    row.fetch_next_at = None
    if result.size is not None:
        row.size = result.size
    message = await session.get(Message, row.message_id)
    assert message is not None
    failures = list((message.meta or {}).get("media_failures") or [])
    failures.append({"attachment_id": row.id, "reason": reason})
    message.meta = {**(message.meta or {}), "media_failures": failures}
    conversation = await session.get(Conversation, message.conversation_id)
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=Actor.system(),
        case_id=message.case_id or (conversation.case_id if conversation else None),
        conversation_id=message.conversation_id,
        message_id=message.id,
        summary=f"Anexo não recebido: {reason}",
        data={"attachment_id": row.id, "reason": reason},
    )


async def fetch_due_media(
    *,
    message_id: int | None = None,
    limit: int = 20,
    settings: Settings | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
    client: httpx.AsyncClient | None = None,
) -> list[int]:
    """One pass: fetch the due PENDING media (of one message, or any); returns the ids of the
    conversations whose waiting turns may now run."""
    settings = settings or get_settings()
    maker = maker or get_sessionmaker()
    claimed = await _claim(maker, message_id=message_id, limit=limit)
    if not claimed:
        return []
    twilio = settings.twilio
    auth = (
        (twilio.account_sid, twilio.auth_token.get_secret_value())
        if twilio.account_sid and twilio.auth_token
        else None
    )

    async def fetch(http: httpx.AsyncClient, item: _Claimed) -> InboundAttachment:
        downloader = _DOWNLOADERS.get(str(item.meta.get("provider") or "twilio"))
        if downloader is not None:
            return await downloader(
                http,
                url=item.ref.url,
                content_type=item.ref.content_type,
                meta=item.meta,
                max_bytes=settings.max_attachment_bytes,
                name=f"whatsapp-{item.message_sid}-{item.ref.index}",
            )
        return await download_one(
            http,
            item.ref,
            auth=auth,
            max_bytes=settings.max_attachment_bytes,
            message_sid=item.message_sid,
        )

    if client is not None:
        results = await asyncio.gather(*(fetch(client, item) for item in claimed))
    else:
        async with httpx.AsyncClient(timeout=MEDIA_TIMEOUT) as http:
            results = await asyncio.gather(*(fetch(http, item) for item in claimed))
    ready: list[int] = []
    for item, result in zip(claimed, results, strict=True):
        conversation_id = await _record(maker, item, result)
        if conversation_id is not None and conversation_id not in ready:
            ready.append(conversation_id)
    return ready
