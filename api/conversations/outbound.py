"""The one way out: every outbound message (bot, analyst, system) is recorded and put in the
outbox in the caller's transaction; the outbox worker delivers it.

Callers (engine, handoff, templates) queue a channel-neutral `OutboundMessage` with
`do_queue_message`; the conversation's channel composes it (e-mail: greeting, signature,
threading, subject; WhatsApp: template Content SID, 1,600-character parts) through the
`ChannelComposer` it registered (`api/channels/registry.py`). Nothing here knows a channel.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from api.config import get_settings
from api.contacts.models import ContactKind, ContactPoint
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
from api.errors import AppError, Conflict, ValidationFailed
from api.events import about, emit
from api.events.kinds import MessageSent
from api.outbox.models import OutboxItem, OutboxState
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


@dataclass(frozen=True)
class TemplateUse:
    """A catalog template chosen by a caller, with its variables and the text it renders to;
    the channel decides how it travels (WhatsApp: an approved Content SID)."""

    name: str
    variables: dict[str, str]
    rendered_text: str


@dataclass(frozen=True)
class OutboundMessage:
    """What a caller wants said, before any channel dresses it.

    `texts` are the messages of one turn: a channel may send each on its own (WhatsApp) or
    join them into one (e-mail answers one mail with one mail). `author` decides how a channel
    presents it: only automatic (bot, system) mail carries the automatic-answer footer and
    Auto-Submitted.
    """

    author: AuthorKind
    texts: tuple[str, ...] = ()
    template: TemplateUse | None = None
    author_name: str | None = None
    reply_to_message_id: int | None = None
    attachments: tuple[OutboundAttachment, ...] = ()
    cc: tuple[str, ...] = ()

    @property
    def automatic(self) -> bool:
        return self.author is not AuthorKind.ANALYST


class ChannelComposer(Protocol):
    """What a channel adds to the channel-neutral pipeline; one per channel, registered by the
    channel's package (`api.channels.registry`)."""

    channel: Channel
    # How the channel's sender addresses are stored as contact points.
    contact_kind: ContactKind
    # Whether free-form text is only allowed for a while after the infringer wrote (WhatsApp).
    has_reply_window: bool
    # The channel's name as analysts read it ("WhatsApp", "E-mail").
    label: str
    # The name of the view the panel shows this channel's messages with beyond their text
    # ("email": headers and sanitized HTML), None for text alone.
    message_view: str | None

    async def compose(
        self, session: AsyncSession, *, conversation: Conversation, message: OutboundMessage
    ) -> list[Outbound]:
        """Turn a neutral message into the channel's provider-ready outbound messages."""
        ...

    def split(self, outbound: Outbound) -> list[Outbound]:
        """The parts the provider accepts (WhatsApp: 1,600 characters each)."""
        ...

    def check_template(self, template: TemplateUse) -> None:
        """Raise when the channel cannot send this template (WhatsApp: no approved SID)."""
        ...

    def window_open_until(self, conversation: Conversation) -> dt.datetime | None:
        """Until when free-form text may be sent, None when the channel has no such window."""
        ...

    def check_window(
        self, conversation: Conversation, outbound: Outbound, now: dt.datetime
    ) -> None:
        """Raise WindowClosed when the channel refuses this message now."""
        ...

    async def reply_from(self, session: AsyncSession, conversation: Conversation) -> str | None:
        """Our own address the reply leaves from, when the channel has several."""
        ...


class ChannelNotRegistered(AppError):
    code = "channel_not_registered"
    status_code = 500


_COMPOSERS: dict[Channel, ChannelComposer] = {}


def register_composer(composer: ChannelComposer) -> None:
    _COMPOSERS[composer.channel] = composer


def get_composer(channel: Channel) -> ChannelComposer:
    composer = _COMPOSERS.get(channel)
    if composer is None:
        raise ChannelNotRegistered(
            f"No composer registered for channel {channel!s}: import api.channels first."
        )
    return composer


_AUTHOR_OF = {
    ActorKind.BOT: AuthorKind.BOT,
    ActorKind.ANALYST: AuthorKind.ANALYST,
    ActorKind.SYSTEM: AuthorKind.SYSTEM,
}


def author_of(actor: Actor) -> AuthorKind:
    return _AUTHOR_OF.get(actor.kind, AuthorKind.SYSTEM)


def channel_label(channel: Channel) -> str:
    return get_composer(channel).label


def message_view(channel: Channel) -> str | None:
    """The name of the channel's rich message view for the panel (None: text alone)."""
    return get_composer(channel).message_view


def has_reply_window(conversation: Conversation) -> bool:
    """Whether this conversation's channel limits free-form text to a window (WhatsApp: 24 h)."""
    return get_composer(conversation.channel).has_reply_window


def window_open_until(conversation: Conversation) -> dt.datetime | None:
    """Until when free-form text is allowed on this conversation's channel (None: no window)."""
    return get_composer(conversation.channel).window_open_until(conversation)


def check_can_send(
    conversation: Conversation,
    contact: ContactPoint | None,
    outbound: Outbound,
    *,
    allow_suppressed: bool = False,
    now: dt.datetime | None = None,
) -> None:
    """Raise when this message must not go out: opted-out contact, or the channel's window
    (WhatsApp: 24 h) closed."""
    if contact is not None and contact.opted_out_at is not None and not allow_suppressed:
        raise ContactSuppressed(
            "O contato pediu para não receber mensagens (opt-out); "
            "um analista precisa liberar o contato antes."
        )
    get_composer(conversation.channel).check_window(conversation, outbound, now or utcnow())


async def do_queue_message(
    session: AsyncSession,
    *,
    conversation: Conversation,
    message: OutboundMessage,
    actor: Actor,
    allow_suppressed: bool = False,
) -> list[Message]:
    """Compose a channel-neutral message for the conversation's channel and queue what the
    channel makes of it (one or more messages), in the current transaction."""
    composer = get_composer(conversation.channel)
    outbounds = await composer.compose(session, conversation=conversation, message=message)
    queued: list[Message] = []
    for outbound in outbounds:
        queued += await _queue_parts(
            session,
            conversation=conversation,
            outbound=outbound,
            actor=actor,
            allow_suppressed=allow_suppressed,
        )
    return queued


async def do_queue_outbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    outbound: Outbound,
    actor: Actor,
    allow_suppressed: bool = False,
) -> Message:
    """Record an already composed outbound message and its outbox row in the current
    transaction; a text longer than the channel takes goes as several parts (the first is
    returned)."""
    return (
        await _queue_parts(
            session,
            conversation=conversation,
            outbound=outbound,
            actor=actor,
            allow_suppressed=allow_suppressed,
        )
    )[0]


async def _queue_parts(
    session: AsyncSession,
    *,
    conversation: Conversation,
    outbound: Outbound,
    actor: Actor,
    allow_suppressed: bool,
) -> list[Message]:
    composer = get_composer(conversation.channel)
    contact = await session.get(ContactPoint, conversation.contact_point_id)
    check_can_send(conversation, contact, outbound, allow_suppressed=allow_suppressed)
    text = outbound.template.rendered_text if outbound.template else outbound.text
    if not text.strip() and not outbound.attachments:
        raise ValidationFailed("Mensagem vazia.")
    reply_from = await composer.reply_from(session, conversation)
    return [
        await _store(
            session, conversation=conversation, outbound=part, actor=actor, sender=reply_from
        )
        for part in composer.split(outbound)
    ]


@functools.cache
def _touch_outbound_statement() -> sa.Update:
    table = cast(sa.Table, Conversation.__table__)
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("p_conversation_id", type_=sa.Integer))
        .values(last_outbound_at=sa.bindparam("p_at", type_=table.c.last_outbound_at.type))
    )


@functools.cache
def _outbox_insert_statement() -> sa.Insert:
    return sa.insert(cast(sa.Table, OutboxItem.__table__))


@functools.cache
def _store_at_once_statement() -> sa.Select[Message]:
    """PostgreSQL: a queued message's three writes in one statement — the message (returned
    whole), its outbox row (pending, due now) and the conversation's last_outbound_at — which
    `_store` otherwise makes one by one. Every value is bound (no Python-side column default
    runs inside a CTE) and no bound name equals a column's."""
    messages = cast(sa.Table, Message.__table__)
    outbox = cast(sa.Table, OutboxItem.__table__)
    conversations = cast(sa.Table, Conversation.__table__)

    def bound(name: str, column: sa.ColumnElement[Any]) -> sa.BindParameter[Any]:
        return sa.bindparam(f"p_{name}", type_=column.type)

    stored = (
        sa.insert(messages)
        .values({name: bound(name, messages.c[name]) for name in _STORED_COLUMNS})
        .returning(*messages.c)
        .cte("stored")
    )
    o = outbox.c
    queued = (
        sa.insert(outbox)
        .from_select(
            [
                "message_id",
                "conversation_id",
                "channel",
                "payload",
                "state",
                "attempts",
                "next_attempt_at",
                "created_at",
            ],
            sa.select(
                stored.c.id,
                bound("conversation_id", o.conversation_id),
                bound("channel", o.channel),
                bound("payload", o.payload),
                sa.literal(OutboxState.PENDING, type_=o.state.type),
                sa.literal(0, type_=o.attempts.type),
                bound("created_at", o.next_attempt_at),
                bound("created_at", o.created_at),
            ),
        )
        .cte("queued")
    )
    touched = (
        sa.update(conversations)
        .where(conversations.c.id == bound("conversation_id", conversations.c.id))
        .values(last_outbound_at=bound("created_at", conversations.c.last_outbound_at))
        .cte("touched")
    )
    return sa.select(aliased(Message, stored)).add_cte(queued, touched)


# The message's columns `_store_at_once_statement` binds (the others start NULL, as an added
# Message's would).
_STORED_COLUMNS = (
    "conversation_id",
    "case_id",
    "direction",
    "channel",
    "author_kind",
    "analyst_id",
    "text",
    "subject",
    "delivery_status",
    "meta",
    "created_at",
)


async def _store(
    session: AsyncSession,
    *,
    conversation: Conversation,
    outbound: Outbound,
    actor: Actor,
    sender: str | None,
) -> Message:
    text = outbound.template.rendered_text if outbound.template else outbound.text
    author = author_of(actor)
    values: dict[str, Any] = {
        "conversation_id": conversation.id,
        "case_id": conversation.case_id,
        "direction": Direction.OUTBOUND,
        "channel": conversation.channel,
        "author_kind": author,
        "analyst_id": actor.analyst_id,
        "text": text,
        "subject": outbound.subject,
        "delivery_status": DeliveryStatus.PENDING,
        "meta": {
            **outbound.meta,
            **(
                {"content_sid": outbound.template.content_sid}
                if outbound.template is not None
                else {}
            ),
        },
    }
    payload = {
        "to": conversation.address,
        "from": sender,
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
        "meta": {"author_kind": str(author), **outbound.meta},
    }
    sent_at = utcnow()
    if session.get_bind().dialect.name == "postgresql":
        params = {f"p_{name}": value for name, value in values.items()}
        params |= {"p_created_at": sent_at, "p_payload": payload}
        message = (await session.scalars(_store_at_once_statement(), params)).one()
    else:
        message = Message(**values)
        session.add(message)
        await session.flush()
        # A Core INSERT: the row is not read back here (the ORM's flush of it cost about three
        # times the statement); the column defaults (pending, due now) apply as for an added row.
        await session.execute(
            _outbox_insert_statement(),
            {
                "message_id": message.id,
                "conversation_id": conversation.id,
                "channel": conversation.channel,
                "payload": payload,
            },
        )
        # A Core UPDATE (an ORM flush of the changed attribute cost about twice the statement).
        await session.execute(
            _touch_outbound_statement(), {"p_conversation_id": conversation.id, "p_at": sent_at}
        )
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
    # The conversation told its new last_outbound_at as if loaded.
    set_committed_value(conversation, "last_outbound_at", sent_at)
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
