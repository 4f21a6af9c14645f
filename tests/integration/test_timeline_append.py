"""`create_entry` writes one timeline row with a Core INSERT and hands back the entry, detached
with every column set: what the caller reads from it is what was stored, objects the caller
added before it are flushed first (as the ORM's flush did), and a rollback leaves nothing of
it in the session (SQLite gives a rolled-back id to the next row)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import create_contact_point
from api.conversations.models import Channel, Conversation
from api.db import unit_of_work
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor, create_entry

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


async def _new_conversation(session: AsyncSession, prefix: str) -> Conversation:
    """An e-mail conversation with a new, unmatched contact, flushed (it has its id)."""
    contact = await create_contact_point(
        session,
        kind=ContactKind.EMAIL,
        value=f"{prefix}-{uuid.uuid4().hex[:12]}@exemplo.com.br",
        infringer_id=None,
    )
    conversation = Conversation(
        contact_point_id=contact.id, channel=Channel.EMAIL, address=contact.value
    )
    session.add(conversation)
    await session.flush()
    return conversation


async def test_an_entry_is_stored_once_and_handed_back_as_stored() -> None:
    async with unit_of_work() as session:
        conversation = await _new_conversation(session, "timeline")
        with pytest.raises(ValueError):
            await create_entry(session, kind=EntryKind.NOTE, actor=Actor.system(), summary="x")
        # Added and not flushed: the entry's INSERT flushes it first, as the ORM's flush did.
        other = ContactPoint(
            kind=ContactKind.EMAIL, value=f"outro-{uuid.uuid4().hex[:12]}@exemplo.com.br"
        )
        session.add(other)
        entry = await create_entry(
            session,
            kind=EntryKind.NOTE,
            actor=Actor(ActorKind.ANALYST, name="Ana"),
            conversation_id=conversation.id,
            summary="O infrator pediu o boleto de novo.",
            data={"note": True},
        )
        assert entry.id is not None
        assert other not in session.new and other.id is not None
        assert entry not in session  # nothing for a rollback to leave behind
        entry_id = entry.id
        created_at = entry.created_at
    async with unit_of_work() as session:
        stored = (
            (
                await session.execute(
                    sa.select(TimelineEntry).where(TimelineEntry.conversation_id == conversation.id)
                )
            )
            .scalars()
            .all()
        )
        assert [e.id for e in stored] == [entry_id]  # written once
        (row,) = stored
        assert row.kind is EntryKind.NOTE and row.actor_kind is ActorKind.ANALYST
        assert row.actor_name == "Ana" and row.summary == "O infrator pediu o boleto de novo."
        assert row.data == {"note": True} and row.case_id is None and row.message_id is None
        assert abs((row.created_at - created_at).total_seconds()) < 0.001


async def test_after_a_rollback_the_next_entry_is_written_whatever_id_it_gets() -> None:
    async with unit_of_work() as session:
        conversation_id = (await _new_conversation(session, "rollback")).id
    async with unit_of_work() as session:
        async with session.begin_nested():
            first = await create_entry(
                session,
                kind=EntryKind.SYSTEM,
                actor=Actor.system(),
                conversation_id=conversation_id,
                summary="desfeita",
            )
            await session.rollback()
        again = await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=Actor.system(),
            conversation_id=conversation_id,
            summary="mantida",
        )
        assert again.summary == "mantida" and first.summary == "desfeita"
    async with unit_of_work() as session:
        kept = await session.scalars(
            sa.select(TimelineEntry.summary).where(TimelineEntry.conversation_id == conversation_id)
        )
        assert kept.all() == ["mantida"]
