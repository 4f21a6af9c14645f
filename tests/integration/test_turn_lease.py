"""The end of a turn gives the conversation's lease back unless a message is ready, in one
statement; it must agree with `_oldest_ready` on what "ready" means, or a message would be
stranded (released while ready) or a lease kept with nothing to do."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from api.contacts.models import ContactPoint
from api.conversations.inbound import InboundAttachment, InboundMessage, do_receive_message
from api.conversations.models import Attachment, Channel, Conversation, MediaState, Message
from api.conversations.scheduling import turn_scheduler
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.engine import turns
from tests.helpers.turns import RecordingScheduler

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
# DDD 86: numbers no other test module uses.
_seq = iter(range(10_000_000, 99_999_999, 7919))


@pytest.fixture(autouse=True)
async def settled() -> AsyncIterator[None]:
    """Leave no pending turn, media or lease behind for other modules' worker passes."""
    yield
    async with unit_of_work() as session:
        mine = (
            sa.select(Conversation.id)
            .join(ContactPoint, ContactPoint.id == Conversation.contact_point_id)
            .where(ContactPoint.value.like("%+55869%"))
        )
        ids = list((await session.scalars(mine)).all())
        messages = sa.select(Message.id).where(Message.conversation_id.in_(ids))
        await session.execute(
            sa.update(Attachment)
            .where(
                Attachment.message_id.in_(messages), Attachment.media_state == MediaState.PENDING
            )
            .values(media_state=MediaState.REFUSED, refused_reason="teste encerrado")
        )
        await session.execute(
            sa.update(Message)
            .where(Message.conversation_id.in_(ids), Message.handled_at.is_(None))
            .values(handled_at=utcnow())
        )
        await session.execute(
            sa.update(Conversation)
            .where(Conversation.id.in_(ids))
            .values(turn_lease_token=None, turn_lease_until=None)
        )


def _inbound(phone: str, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=f"SMlease{uuid.uuid4().hex}",
        sender=f"whatsapp:{phone}",
        text="oi",
        received_at=utcnow(),
        raw={"Body": "oi"},
        **kw,
    )


_MEDIA = InboundAttachment(
    content_type="image/png", data=None, source_url="https://media.invalid/1", size=10
)


async def _conversation(*messages: dict[str, Any]) -> tuple[int, list[int]]:
    """A new conversation with `messages` (keyword sets for `_inbound`), all unhandled."""
    phone = f"+55869{next(_seq):08d}"
    ids: list[int] = []
    conversation_id = 0
    with turn_scheduler(RecordingScheduler()):
        for extra in messages:
            async with unit_of_work() as session:
                received = await do_receive_message(session, _inbound(phone, **extra))
                conversation_id = received.conversation.id
                ids.append(received.message.id)
    return conversation_id, ids


async def _handle_all(conversation_id: int, ids: list[int]) -> None:
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Message).where(Message.id.in_(ids)).values(handled_at=utcnow())
        )


async def _claimed(conversation_id: int) -> str:
    """Take the conversation's lease as a turn's claim does; the token."""
    token = str(uuid.uuid4())
    now = utcnow()
    async with unit_of_work() as session:
        claimed = await session.scalar(
            turns._claim_statement(),
            {
                "p_conversation_id": conversation_id,
                "p_now": now,
                "p_token": token,
                "p_until": now + turns.LEASE,
            },
        )
    assert claimed == conversation_id
    return token


async def _end_of_turn(conversation_id: int) -> tuple[turns.PendingTurn | None, str | None]:
    """Take the lease, then end a turn as `_finish` does: renew, then next or release.
    Returns the next turn and the lease token the conversation is left with."""
    maker = get_sessionmaker()
    token = await _claimed(conversation_id)
    async with unit_of_work(maker) as session:
        assert await turns._renew(session, conversation_id, token)
        following = await turns._next_or_release(session, conversation_id, token)
    async with unit_of_work(maker) as session:
        left = await session.scalar(
            sa.select(Conversation.turn_lease_token).where(Conversation.id == conversation_id)
        )
    return following, left


async def test_nothing_left_gives_the_lease_back() -> None:
    conversation_id, ids = await _conversation({})
    await _handle_all(conversation_id, ids)
    following, token = await _end_of_turn(conversation_id)
    assert following is None
    assert token is None  # another process can claim the conversation at once


async def test_a_ready_message_keeps_the_lease_and_is_the_next_turn() -> None:
    conversation_id, ids = await _conversation({}, {}, {})
    await _handle_all(conversation_id, ids[:1])
    following, token = await _end_of_turn(conversation_id)
    assert following is not None and following.message_id == ids[1]  # the oldest ready one
    assert token is not None


async def test_an_oldest_message_waiting_for_its_media_gives_the_lease_back() -> None:
    # Turns keep their order: a younger, ready message waits behind the one being fetched.
    conversation_id, _ = await _conversation({"attachments": (_MEDIA,)}, {})
    following, token = await _end_of_turn(conversation_id)
    assert following is None
    assert token is None  # the fetcher schedules the turn once the media are in


async def test_media_fetched_makes_the_message_ready_again() -> None:
    conversation_id, ids = await _conversation({"attachments": (_MEDIA,)}, {})
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Attachment)
            .where(Attachment.message_id == ids[0])
            .values(media_state=MediaState.REFUSED, refused_reason="grande demais")
        )
    following, token = await _end_of_turn(conversation_id)
    assert following is not None and following.message_id == ids[0]
    assert token is not None


async def _lease(conversation_id: int) -> tuple[str | None, Any]:
    async with unit_of_work() as session:
        row = (
            await session.execute(
                sa.select(Conversation.turn_lease_token, Conversation.turn_lease_until).where(
                    Conversation.id == conversation_id
                )
            )
        ).one()
    return row[0], row[1]


async def test_the_finish_renews_and_reads_the_conversation_first() -> None:
    from tests.helpers.queries import count_queries

    conversation_id, _ = await _conversation({})
    token = await _claimed(conversation_id)
    _, before = await _lease(conversation_id)
    async with unit_of_work() as session:
        dialect = session.get_bind().dialect.name
        with count_queries() as log:
            loaded = await turns._renew_and_load(session, conversation_id, token)
            conversation, renewed = loaded.conversation, loaded.renewed
            contact = await session.get(ContactPoint, conversation.contact_point_id)
        assert renewed and conversation.id == conversation_id
        assert conversation.turn_lease_token == token
        assert contact is not None and contact.value.startswith("+55869")  # already loaded
    # PostgreSQL: the renewal and the read are one statement; SQLite: two.
    assert log.count == (1 if dialect == "postgresql" else 2), log
    left, after = await _lease(conversation_id)
    assert left == token and after > before


async def test_a_finish_whose_lease_was_lost_reads_the_conversation_and_changes_no_lease() -> None:
    conversation_id, _ = await _conversation({})
    theirs = await _claimed(conversation_id)  # the lease expired; another process took it
    _, until = await _lease(conversation_id)
    async with unit_of_work() as session:
        loaded = await turns._renew_and_load(session, conversation_id, str(uuid.uuid4()))
        assert not loaded.renewed and loaded.conversation.id == conversation_id
    assert await _lease(conversation_id) == (theirs, until)


async def test_a_finish_after_a_lost_lease_records_the_turn_and_runs_no_next() -> None:
    from api.engine.client import EngineTurn, NluReading

    conversation_id, ids = await _conversation({}, {})
    turn = None
    async with unit_of_work() as session:
        turn = await turns._oldest_ready(session, conversation_id)
    assert turn is not None and turn.message_id == ids[0]
    theirs = await _claimed(conversation_id)
    following = await turns._finish(
        get_sessionmaker(),
        turn,
        str(uuid.uuid4()),  # ours expired: another process took the conversation
        result=EngineTurn(
            messages=[], nlu=NluReading(intent="greet", confidence=0.9), paused=False
        ),
        failure=None,
        opt_out=False,
    )
    assert following is None  # the holder runs the next turn, not us
    async with unit_of_work() as session:
        handled = await session.scalar(sa.select(Message.handled_at).where(Message.id == ids[0]))
    assert handled is not None  # recorded once, by whoever finished first
    left, _ = await _lease(conversation_id)
    assert left == theirs
