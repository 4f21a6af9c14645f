"""Read models of a conversation for the analyst's screens: the conversation with its case,
holder and reply state, its timeline joined to the messages and files it shows, and the
attachments a page links to. Pages render these; they run no queries of their own."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.analysts.models import Analyst
from api.cases.models import Case
from api.cases.service import require_case
from api.conversations.models import Attachment, Conversation, Message
from api.conversations.outbound import has_reply_window, window_open_until
from api.db import utcnow
from api.handoff.permissions import can_write
from api.handoff.service import require_conversation
from api.timeline.models import TimelineEntry
from api.timeline.service import get_case_timeline

TIMELINE_LIMIT = 500


@dataclass(frozen=True)
class TimelineRow:
    """One timeline entry with the message it records (attachments loaded) and that message's
    own conversation (a case's timeline spans all of its conversations)."""

    entry: TimelineEntry
    message: Message | None
    message_conversation: Conversation | None
    in_this_conversation: bool


@dataclass(frozen=True)
class ReplyWindow:
    """The WhatsApp 24-hour window: whether free text may go out now, and until when."""

    open: bool
    until: dt.datetime | None


@dataclass(frozen=True)
class ConversationView:
    conversation: Conversation
    case: Case | None
    holder_name: str | None
    can_write: bool
    window: ReplyWindow | None
    timeline: Sequence[TimelineRow]


def _window(conversation: Conversation) -> ReplyWindow | None:
    if not has_reply_window(conversation):
        return None
    until = window_open_until(conversation)
    return ReplyWindow(open=until is not None and utcnow() <= until, until=until)


async def get_conversation_timeline(
    session: AsyncSession, *, conversation: Conversation, limit: int = TIMELINE_LIMIT
) -> list[TimelineRow]:
    """The whole case timeline (every conversation of the case), or the conversation's own
    entries while it is not linked to a case; at most three queries after the entries."""
    entries: list[TimelineEntry]
    if conversation.case_id is not None:
        entries = list(await get_case_timeline(session, case_id=conversation.case_id, limit=limit))
    else:
        query = (
            sa.select(TimelineEntry)
            .where(TimelineEntry.conversation_id == conversation.id)
            .order_by(TimelineEntry.id)
            .limit(limit)
        )
        entries = list((await session.scalars(query)).all())
    message_ids = {e.message_id for e in entries if e.message_id is not None}
    messages: dict[int, Message] = {}
    conversations: dict[int, Conversation] = {conversation.id: conversation}
    if message_ids:
        rows = await session.scalars(
            sa.select(Message)
            .where(Message.id.in_(message_ids))
            .options(selectinload(Message.attachments))
        )
        messages = {m.id: m for m in rows}
        other_ids = {m.conversation_id for m in messages.values()} - set(conversations)
        if other_ids:
            for other in await session.scalars(
                sa.select(Conversation).where(Conversation.id.in_(other_ids))
            ):
                conversations[other.id] = other
    result = []
    for entry in entries:
        message = messages.get(entry.message_id) if entry.message_id is not None else None
        owner = message.conversation_id if message is not None else entry.conversation_id
        result.append(
            TimelineRow(
                entry=entry,
                message=message,
                message_conversation=(
                    conversations.get(message.conversation_id) if message is not None else None
                ),
                in_this_conversation=owner in (None, conversation.id),
            )
        )
    return result


async def get_conversation_view(
    session: AsyncSession,
    *,
    conversation_id: int,
    analyst: Analyst,
    with_case: bool = True,
) -> ConversationView:
    """What the conversation page shows to `analyst`; NotFound when there is no such
    conversation."""
    conversation = await require_conversation(session, conversation_id=conversation_id)
    case = (
        await require_case(session, case_id=conversation.case_id)
        if with_case and conversation.case_id is not None
        else None
    )
    holder = (
        await session.get(Analyst, conversation.analyst_id)
        if conversation.analyst_id is not None
        else None
    )
    return ConversationView(
        conversation=conversation,
        case=case,
        holder_name=holder.name if holder is not None else None,
        can_write=can_write(conversation, analyst),
        window=_window(conversation),
        timeline=await get_conversation_timeline(session, conversation=conversation),
    )


async def get_attachment(session: AsyncSession, *, attachment_id: int) -> Attachment | None:
    return await session.get(Attachment, attachment_id)


async def get_inline_image(
    session: AsyncSession, *, message_id: int, content_id: str
) -> Attachment | None:
    """The attachment an e-mail shows inline as `<img src="cid:…">`, by its Content-ID (the
    message's `inline_images` maps Content-IDs to file digests)."""
    message = await session.get(Message, message_id)
    inline = (message.meta or {}).get("inline_images") if message is not None else None
    if not isinstance(inline, dict):
        return None
    digest = inline.get(content_id) or inline.get(f"<{content_id}>")
    if not digest:
        return None
    query = (
        sa.select(Attachment)
        .where(Attachment.message_id == message_id, Attachment.sha256 == str(digest))
        .limit(1)
    )
    attachment: Attachment | None = await session.scalar(query)
    return attachment
