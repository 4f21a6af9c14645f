"""The one way out: every outbound message (bot, analyst, system) is recorded and put in the
outbox in the caller's transaction; the outbox worker delivers it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import get_settings
from api.contacts.models import ContactPoint
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.db import utcnow
from api.errors import Conflict, ValidationFailed
from api.events import about, emit
from api.events.kinds import MessageSent
from api.outbox.models import OutboxItem
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry


class WindowClosed(ValidationFailed):
    code = "whatsapp_window_closed"


class ContactSuppressed(Conflict):
    code = "contact_suppressed"


@dataclass(frozen=True)
class TemplateRef:
    """An approved WhatsApp template (Twilio Content SID) with its variables and rendered text."""

    content_sid: str
    variables: dict[str, str]
    rendered_text: str


@dataclass(frozen=True)
class OutboundAttachment:
    storage_path: str
    filename: str
    content_type: str
    sha256: str | None = None
    size: int = 0


def public_media_url(sha256: str) -> str:
    """Where a provider that fetches media (Twilio) downloads an attachment we send."""
    return f"{get_settings().public_base_url.rstrip('/')}/media/{sha256}"


@dataclass(frozen=True)
class Outbound:
    text: str
    template: TemplateRef | None = None
    subject: str | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)


_AUTHOR_OF = {
    ActorKind.BOT: AuthorKind.BOT,
    ActorKind.ANALYST: AuthorKind.ANALYST,
    ActorKind.SYSTEM: AuthorKind.SYSTEM,
}


def window_open_until(conversation: Conversation) -> dt.datetime | None:
    """Until when free-form WhatsApp text is allowed (24 h after the infringer's last message)."""
    if conversation.last_inbound_at is None:
        return None
    hours = get_settings().whatsapp_window_hours
    return conversation.last_inbound_at + dt.timedelta(hours=hours)


def check_can_send(
    conversation: Conversation,
    contact: ContactPoint | None,
    outbound: Outbound,
    *,
    allow_suppressed: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Raise when this message must not go out: opted-out contact, or WhatsApp window closed."""
    if contact is not None and contact.opted_out_at is not None and not allow_suppressed:
        raise ContactSuppressed(
            "O contato pediu para não receber mensagens (opt-out); "
            "um analista precisa liberar o contato antes."
        )
    if conversation.channel is Channel.WHATSAPP and outbound.template is None:
        until = window_open_until(conversation)
        if until is None or (now or utcnow()) > until:
            raise WindowClosed(
                "Fora da janela de 24 horas do WhatsApp: só é possível enviar um modelo "
                "aprovado (template) até o infrator responder.",
                window_closed_at=until.isoformat() if until else None,
            )


async def _reply_from(session: AsyncSession, conversation: Conversation) -> str | None:
    """Our WhatsApp number the infringer last wrote to: the reply leaves from it (a firm with
    several numbers answers on the one the infringer knows)."""
    if conversation.channel is not Channel.WHATSAPP:
        return None
    meta = await session.scalar(
        sa.select(Message.meta)
        .where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND)
        .order_by(Message.id.desc())
        .limit(1)
    )
    to = (meta or {}).get("to")
    return str(to) if to else None


async def do_queue_outbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    outbound: Outbound,
    actor: Actor,
    allow_suppressed: bool = False,
) -> Message:
    """Record an outbound message and its outbox row in the current transaction."""
    contact = await session.get(ContactPoint, conversation.contact_point_id)
    check_can_send(conversation, contact, outbound, allow_suppressed=allow_suppressed)
    text = outbound.template.rendered_text if outbound.template else outbound.text
    if not text.strip() and not outbound.attachments:
        raise ValidationFailed("Mensagem vazia.")
    message = Message(
        conversation_id=conversation.id,
        case_id=conversation.case_id,
        direction=Direction.OUTBOUND,
        channel=conversation.channel,
        author_kind=_AUTHOR_OF.get(actor.kind, AuthorKind.SYSTEM),
        analyst_id=actor.analyst_id,
        text=text,
        subject=outbound.subject,
        delivery_status=DeliveryStatus.PENDING,
        meta={
            **outbound.meta,
            **(
                {"content_sid": outbound.template.content_sid}
                if outbound.template is not None
                else {}
            ),
        },
    )
    session.add(message)
    await session.flush()
    for item in outbound.attachments:
        session.add(
            Attachment(
                message_id=message.id,
                filename=item.filename,
                content_type=item.content_type,
                size=item.size,
                sha256=item.sha256,
                storage_path=item.storage_path,
            )
        )
    session.add(
        OutboxItem(
            message_id=message.id,
            conversation_id=conversation.id,
            channel=conversation.channel,
            payload={
                "to": conversation.address,
                "from": await _reply_from(session, conversation),
                "text": text,
                "subject": outbound.subject,
                "content_sid": outbound.template.content_sid if outbound.template else None,
                "content_variables": outbound.template.variables if outbound.template else None,
                "attachments": [
                    {
                        "path": a.storage_path,
                        "filename": a.filename,
                        "content_type": a.content_type,
                        **({"url": public_media_url(a.sha256)} if a.sha256 else {}),
                    }
                    for a in outbound.attachments
                ],
                # Who wrote it decides how a channel presents it (e-mail: only automatic mail
                # carries the automatic-answer footer and Auto-Submitted).
                "meta": {"author_kind": str(message.author_kind), **outbound.meta},
            },
        )
    )
    conversation.last_outbound_at = utcnow()
    await create_entry(
        session,
        kind=EntryKind.MESSAGE,
        actor=actor,
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        message_id=message.id,
        summary=text if len(text) <= 280 else text[:279] + "…",
        data={"channel": str(conversation.channel), "direction": "outbound"},
    )
    emit(
        session,
        MessageSent(
            **about(conversation=conversation, actor=actor),
            message_id=message.id,
            author_kind=str(message.author_kind),
            template=outbound.template.content_sid if outbound.template else None,
        ),
    )
    return message
