"""Conversations: finding them, linking them to a case, and the id Rasa knows them by."""

from __future__ import annotations

import functools
import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.models import Case
from api.contacts.models import ContactPoint
from api.conversations.models import Channel, Conversation
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

_SENDER_RE = re.compile(r"^conv-(\d+)$")


def sender_id_for(conversation: Conversation) -> str:
    """The Rasa sender id of a conversation."""
    return sender_id_for_id(conversation.id)


def sender_id_for_id(conversation_id: int) -> str:
    """The Rasa sender id of the conversation `conversation_id`."""
    return f"conv-{conversation_id}"


def conversation_id_from_sender(sender_id: str) -> int | None:
    match = _SENDER_RE.match(sender_id or "")
    return int(match.group(1)) if match else None


async def get_conversation(session: AsyncSession, *, conversation_id: int) -> Conversation | None:
    return await session.get(Conversation, conversation_id)


@functools.cache
def _open_conversation_statement() -> sa.Select[Conversation]:
    """The open conversation of a contact on a channel, built once (looked up for every
    message: building the statement per call cost more CPU than running it)."""
    return (
        sa.select(Conversation)
        .where(
            Conversation.channel == sa.bindparam("channel", type_=Conversation.channel.type),
            Conversation.contact_point_id
            == sa.bindparam("contact_point_id", type_=Conversation.contact_point_id.type),
            Conversation.closed_at.is_(None),
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    )


async def get_open_conversation(
    session: AsyncSession, *, channel: Channel, contact_point_id: int
) -> Conversation | None:
    return await session.scalar(
        _open_conversation_statement(),
        {"channel": channel, "contact_point_id": contact_point_id},
    )


async def create_conversation(
    session: AsyncSession,
    *,
    contact: ContactPoint,
    channel: Channel,
    address: str,
    case: Case | None,
) -> Conversation:
    """Open a conversation with a contact on a channel, or return the one already open.

    The database holds one open conversation per (channel, contact) (a partial unique index):
    when a concurrent request (a first webhook and Twilio's replay of it) opened it first, our
    insert fails inside a savepoint and we continue with the winner's conversation.
    """
    existing = await get_open_conversation(session, channel=channel, contact_point_id=contact.id)
    if existing is not None:
        return existing
    conversation = Conversation(
        contact_point_id=contact.id,
        channel=channel,
        address=address,
        case_id=case.id if case is not None else None,
    )
    try:
        async with session.begin_nested():
            session.add(conversation)
    except IntegrityError:
        winner = await get_open_conversation(session, channel=channel, contact_point_id=contact.id)
        if winner is None:
            raise
        return winner
    return conversation


async def do_link_conversation(
    session: AsyncSession, *, conversation: Conversation, case: Case, actor: Actor, how: str
) -> None:
    """Tie a conversation (and its still-unmatched contact) to a case."""
    conversation.case_id = case.id
    contact = await session.get(ContactPoint, conversation.contact_point_id)
    if contact is not None and contact.infringer_id is None:
        contact.infringer_id = case.infringer_id
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        conversation_id=conversation.id,
        summary=f"Conversa {conversation.channel} ({conversation.address}) vinculada ao caso "
        f"{case.reference} por {how}.",
        data={"how": how},
    )
