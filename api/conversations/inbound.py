"""The one way in: every channel adapter turns its payload into an InboundMessage and calls
`do_receive_message`, which stores it idempotently and records it before anything answers."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import do_change_status
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    MediaState,
    Message,
)
from api.conversations.outbound import get_composer
from api.conversations.scheduling import TurnRequest, request_turn_after_commit
from api.conversations.service import create_conversation
from api.db import utcnow
from api.events import about, emit
from api.events.kinds import MessageReceived
from api.storage import StoredBlob, check_size, store_blob
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

_ENGAGE_FROM = (CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA)
_SUMMARY_CHARS = 280
_CONVERSATIONS = cast(sa.Table, Conversation.__table__)


@dataclass(frozen=True)
class InboundAttachment:
    content_type: str
    data: bytes | None
    filename: str | None = None
    # Set by the adapter when it could not or would not fetch the file (too big, unreachable).
    refused_reason: str | None = None
    size: int | None = None
    # A file still to fetch (after the webhook is acknowledged): stored as a PENDING attachment
    # the worker downloads with retries; the bot turn waits for it.
    source_url: str | None = None
    # A failure worth trying again (timeout, network error, provider 5xx/429).
    retryable: bool = False
    # Already written to storage by the adapter (an e-mail parse worker): stored as it is,
    # `data` is None and nothing is written again.
    stored: StoredBlob | None = None


@dataclass(frozen=True)
class InboundMessage:
    """A message from an infringer, whatever the channel."""

    channel: Channel
    external_id: str  # provider id: Twilio MessageSid, e-mail Message-ID
    sender: str  # raw address: "whatsapp:+55…" or an e-mail address
    text: str
    received_at: dt.datetime
    raw: dict[str, Any]
    attachments: tuple[InboundAttachment, ...] = ()
    subject: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    # A channel-specific matcher (e-mail threading) may already know the case.
    case_hint: int | None = None
    # Auto-replies, bounces: recorded, never answered by the bot.
    answerable: bool = True


@dataclass(frozen=True)
class Received:
    message: Message
    conversation: Conversation
    created: bool


@functools.cache
def _insert_once(dialect: str) -> Any:
    """INSERT … ON CONFLICT (channel, provider_id) DO NOTHING RETURNING the message, built once
    per dialect (building it cost more than running it); each call binds its values."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    bound = {
        name: sa.bindparam(f"p_{name}", type_=Message.__table__.c[name].type)
        for name in (
            "conversation_id",
            "case_id",
            "channel",
            "text",
            "subject",
            "provider_id",
            "meta",
            "raw",
            "created_at",
            "handled_at",
        )
    }
    return (
        insert(Message)
        .values(
            direction=Direction.INBOUND,
            author_kind=AuthorKind.INFRINGER,
            delivery_status=DeliveryStatus.RECEIVED,
            **bound,
        )
        .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
        .returning(Message)
    )


@functools.cache
def _insert_once_touching() -> sa.Select[Message, dt.datetime | None]:
    """PostgreSQL: `_insert_once` and, when it inserted, the conversation's last_inbound_at
    moved to the message's time (never back), in one statement; returns the message and the
    conversation's new last_inbound_at (no row: a replay, nothing changed)."""
    inserted = _insert_once("postgresql").cte("inserted")
    at = sa.bindparam("p_created_at", type_=_CONVERSATIONS.c.last_inbound_at.type)
    c = _CONVERSATIONS.c
    touched = (
        sa.update(_CONVERSATIONS)
        .where(
            c.id == sa.bindparam("p_conversation_id", type_=sa.Integer),
            sa.exists(sa.select(inserted.c.id)),
        )
        .values(last_inbound_at=sa.func.greatest(sa.func.coalesce(c.last_inbound_at, at), at))
        .returning(c.last_inbound_at)
        .cte("touched")
    )
    return sa.select(aliased(Message, inserted), touched.c.last_inbound_at).outerjoin(
        touched, sa.true()
    )


async def do_receive_message(session: AsyncSession, inbound: InboundMessage) -> Received:
    """Store an inbound message once (by provider id), tie it to contact, conversation and case,
    and record it on the timeline. A replay returns the stored message with created=False.

    What happens next is decided here, not by the adapter: a new, answerable message asks the
    installed turn scheduler for a bot turn after commit (api.conversations.scheduling); the
    holder of the conversation hears of it through the live notifications (message.received)."""
    kind = get_composer(inbound.channel).contact_kind
    # The contact's open conversation on this channel comes with it, in the same statement.
    found = await do_identify_sender(
        session, kind=kind, raw=inbound.sender, channel=inbound.channel
    )
    case: Case | None = found.case
    if inbound.case_hint is not None:
        case = await session.get(Case, inbound.case_hint) or case
    conversation = found.conversation
    if conversation is None:
        conversation = await create_conversation(
            session,
            contact=found.contact,
            channel=inbound.channel,
            address=found.address,
            case=case,
        )
    else:
        if conversation.case_id is None and case is not None:
            conversation.case_id = case.id
        # Replies go to the address the infringer writes from (a WhatsApp account may lack the
        # ninth digit the contact was stored with): follow the latest form it wrote from.
        if conversation.address != found.address:
            conversation.address = found.address

    meta = {**inbound.meta, "answerable": inbound.answerable}
    params = {
        "p_conversation_id": conversation.id,
        "p_case_id": conversation.case_id,
        "p_channel": inbound.channel,
        "p_text": inbound.text,
        "p_subject": inbound.subject,
        "p_provider_id": inbound.external_id,
        "p_meta": meta,
        "p_raw": inbound.raw or None,
        "p_created_at": inbound.received_at,
        "p_handled_at": None if inbound.answerable else inbound.received_at,
    }
    # Idempotency lives in the database's unique (channel, provider_id), not in a prior read.
    dialect = session.get_bind().dialect.name
    message: Message | None
    if dialect == "postgresql":
        # The conversation's last_inbound_at moves in the same statement (one round trip less
        # per message), only when the message was new.
        row = (await session.execute(_insert_once_touching(), params)).first()
        message = row[0] if row is not None else None
        if row is not None:
            set_committed_value(conversation, "last_inbound_at", row[1])
    else:
        message = await session.scalar(_insert_once(dialect), params)
    if message is None:
        existing = await session.scalar(
            sa.select(Message).where(
                Message.channel == inbound.channel, Message.provider_id == inbound.external_id
            )
        )
        assert existing is not None
        stored = await session.get(Conversation, existing.conversation_id)
        assert stored is not None
        return Received(message=existing, conversation=stored, created=False)

    for item in inbound.attachments:
        session.add(_attachment_row(message.id, item))
    if dialect != "postgresql":
        conversation.last_inbound_at = max(
            conversation.last_inbound_at or inbound.received_at, inbound.received_at
        )
    await session.flush()
    await create_entry(
        session,
        kind=EntryKind.MESSAGE,
        actor=Actor.infringer(),
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        message_id=message.id,
        summary=_summary(inbound),
        data={
            "channel": str(inbound.channel),
            "direction": "inbound",
            "attachments": len(inbound.attachments),
            "answerable": inbound.answerable,
        },
    )
    emit(
        session,
        MessageReceived(
            **about(conversation=conversation, actor=Actor.infringer()),
            occurred_at=inbound.received_at,
            message_id=message.id,
            attachments=len(inbound.attachments),
            answerable=inbound.answerable,
        ),
    )
    if conversation.case_id is not None and inbound.answerable:
        linked = await session.get(Case, conversation.case_id)
        if linked is not None and linked.status in _ENGAGE_FROM:
            await do_change_status(
                session,
                case=linked,
                target=CaseStatus.EM_ATENDIMENTO,
                actor=Actor.infringer(),
                reason="o infrator respondeu",
            )
    if inbound.answerable:
        request_turn_after_commit(
            session,
            TurnRequest(
                conversation_id=conversation.id,
                message_id=message.id,
                channel=inbound.channel,
                media_pending=any(_pending(item) for item in inbound.attachments),
            ),
        )
    return Received(message=message, conversation=conversation, created=True)


def _pending(item: InboundAttachment) -> bool:
    return item.source_url is not None and item.data is None and item.refused_reason is None


def _attachment_row(message_id: int, item: InboundAttachment) -> Attachment:
    if _pending(item):
        return Attachment(
            message_id=message_id,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size or 0,
            media_state=MediaState.PENDING,
            source_url=item.source_url,
            fetch_next_at=utcnow(),
        )
    refused = item.refused_reason
    if refused is None and item.stored is not None:
        refused = check_size(item.stored.size)
        if refused is None:
            return _stored_row(message_id, item, item.stored)
    if refused is None and item.data is not None:
        refused = check_size(len(item.data))
    if refused is not None or item.data is None:
        return Attachment(
            message_id=message_id,
            filename=item.filename,
            content_type=item.content_type,
            size=item.size or (len(item.data) if item.data else 0),
            refused_reason=refused or "arquivo não recebido",
            media_state=MediaState.REFUSED,
        )
    return _stored_row(message_id, item, store_blob(item.data, item.content_type))


def _stored_row(message_id: int, item: InboundAttachment, blob: StoredBlob) -> Attachment:
    return Attachment(
        message_id=message_id,
        filename=item.filename,
        content_type=blob.content_type,
        size=blob.size,
        sha256=blob.sha256,
        storage_path=blob.path,
        media_state=MediaState.STORED,
    )


def _summary(inbound: InboundMessage) -> str:
    text = " ".join(inbound.text.split())
    if len(text) > _SUMMARY_CHARS:
        text = text[: _SUMMARY_CHARS - 1] + "…"
    if not text and inbound.attachments:
        text = f"[{len(inbound.attachments)} anexo(s)]"
    return text or "[mensagem sem texto]"
