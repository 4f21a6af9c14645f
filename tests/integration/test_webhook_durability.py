"""Twilio's webhook acknowledges fast and loses nothing, and a contact has one open conversation:
signed webhooks over real HTTP to the service, media on the Twilio simulator, the real database
(PostgreSQL and SQLite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from api.cases.lifecycle import CaseStatus
from api.channels.whatsapp_twilio import fetching
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    Attachment,
    Channel,
    Conversation,
    Direction,
    MediaState,
    Message,
)
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.engine import dispatch
from api.engine.dispatch import wait_for_scheduled_turns
from api.engine.texts import ENGINE_DOWN_REPLY
from api.engine.turns import process_conversation
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_case, make_infringer
from tests.fixtures.twilio.harness import (
    MESSAGE_PATH,
    TwilioStack,
    load_form,
    new_phone,
    new_sid,
    twilio_stack,
)
from tests.integration.test_twilio_webhook import png

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def running_stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack() as running:
        yield running


@pytest.fixture
async def stack(running_stack: TwilioStack) -> AsyncIterator[TwilioStack]:
    yield running_stack
    await wait_for_scheduled_turns()


@pytest.fixture
def crash_after_ack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process that acknowledged the webhook dies before it fetches anything."""

    async def died(channel: Channel, message_id: int) -> int:
        return 0

    monkeypatch.setattr(dispatch, "fetch_media_then_turns", died)
    yield


async def the_message(sid: str) -> Message:
    async with unit_of_work() as session:
        message = await session.scalar(sa.select(Message).where(Message.provider_id == sid))
    assert message is not None
    return message


async def attachment_of(message_id: int) -> Attachment:
    async with unit_of_work() as session:
        (attachment,) = (
            await session.scalars(sa.select(Attachment).where(Attachment.message_id == message_id))
        ).all()
    return attachment


async def replies(conversation_id: int) -> list[str]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(Message.text)
            .where(
                Message.conversation_id == conversation_id,
                Message.direction == Direction.OUTBOUND,
            )
            .order_by(Message.id)
        )
        return list(rows)


async def make_due(attachment_id: int) -> None:
    """The retry's time has come (instead of sleeping through the backoff)."""
    async with unit_of_work() as session:
        row = await session.get(Attachment, attachment_id)
        assert row is not None
        row.fetch_next_at = utcnow() - dt.timedelta(seconds=1)


async def fetches(stack: TwilioStack, media: dict[str, Any]) -> int:
    stats = (await stack.http.get(f"{stack.sim_url}/_sim/media/{media['id']}/stats")).json()
    return int(stats["fetches"])


def photo_form(media: dict[str, Any], sid: str) -> dict[str, str]:
    return load_form(
        "message_image_caption",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        MediaUrl0=media["url"],
    )


# --- fast acknowledgement, media fetched after it --------------------------------------------


async def test_a_crash_between_the_ack_and_the_download_loses_nothing(
    stack: TwilioStack, crash_after_ack: None
) -> None:
    data = png()
    media = await stack.sim_media(data, "image/png")
    sid = new_sid("MM")
    form = photo_form(media, sid)

    response = await stack.post_signed(MESSAGE_PATH, form)
    await wait_for_scheduled_turns()

    assert response.status_code == 200, response.text
    message = await the_message(sid)
    # What was acknowledged is stored: the raw form, and the media as a reference to fetch.
    assert message.raw is not None and message.raw["MediaUrl0"] == media["url"]
    assert message.raw["MessageSid"] == sid
    attachment = await attachment_of(message.id)
    assert attachment.media_state is MediaState.PENDING
    assert attachment.source_url == media["url"]
    assert await fetches(stack, media) == 0
    # The sweeper does not answer a message whose media has not arrived.
    assert await process_conversation(message.conversation_id, gateway=None) == 0
    assert await replies(message.conversation_id) == []

    # The worker (restarted) fetches it, then the turn runs, once.
    assert await dispatch.fetch_media_once() == 1
    assert await dispatch.fetch_media_once() == 0
    attachment = await attachment_of(message.id)
    assert attachment.media_state is MediaState.STORED
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.filename is not None and attachment.filename.startswith(f"whatsapp-{sid}-0")
    assert (await the_message(sid)).handled_at is not None
    assert await replies(message.conversation_id) == [ENGINE_DOWN_REPLY]
    assert await fetches(stack, media) == 1


async def test_a_transient_failure_is_retried_later_and_the_turn_waits_for_it(
    stack: TwilioStack,
) -> None:
    data = png(6)
    media = await stack.sim_media(data, "image/png", fail_first=1, fail_status=503)
    sid = new_sid("MM")
    before = utcnow()

    response = await stack.post_signed(MESSAGE_PATH, photo_form(media, sid))
    await wait_for_scheduled_turns()

    assert response.status_code == 200
    message = await the_message(sid)
    attachment = await attachment_of(message.id)
    assert attachment.media_state is MediaState.PENDING
    assert attachment.fetch_attempts == 1
    assert attachment.fetch_next_at is not None and attachment.fetch_next_at > before
    assert attachment.refused_reason is None
    assert message.handled_at is None and await replies(message.conversation_id) == []

    await make_due(attachment.id)
    assert await dispatch.fetch_media_once() == 1
    attachment = await attachment_of(message.id)
    assert attachment.media_state is MediaState.STORED
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert await fetches(stack, media) == 2
    assert await replies(message.conversation_id) == [ENGINE_DOWN_REPLY]


async def test_a_permanent_failure_is_recorded_on_the_message_and_the_timeline(
    stack: TwilioStack,
) -> None:
    sid = new_sid("MM")
    form = load_form(
        "message_voice_note",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        MediaUrl0=f"{stack.sim_url}/_sim/media/ME{'0' * 32}",
    )
    response = await stack.post_signed(MESSAGE_PATH, form)
    await wait_for_scheduled_turns()

    assert response.status_code == 200
    message = await the_message(sid)
    attachment = await attachment_of(message.id)
    reason = "falha ao baixar a mídia (HTTP 404)"
    assert attachment.media_state is MediaState.REFUSED
    assert attachment.refused_reason == reason
    assert attachment.fetch_attempts == 1
    assert message.meta is not None
    assert message.meta["media_failures"] == [{"attachment_id": attachment.id, "reason": reason}]
    async with unit_of_work() as session:
        entries = list(
            await session.scalars(
                sa.select(TimelineEntry.summary).where(
                    TimelineEntry.message_id == message.id,
                    TimelineEntry.kind == EntryKind.SYSTEM,
                )
            )
        )
    assert entries == [f"Anexo não recebido: {reason}"]
    # The message is answered anyway, once.
    assert message.handled_at is not None
    assert await replies(message.conversation_id) == [ENGINE_DOWN_REPLY]


async def test_transient_failures_give_up_after_the_last_attempt(
    stack: TwilioStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fetching, "MAX_ATTEMPTS", 3)
    media = await stack.sim_media(png(), "image/png", fail_first=10, fail_status=500)
    sid = new_sid("MM")
    await stack.post_signed(MESSAGE_PATH, photo_form(media, sid))
    await wait_for_scheduled_turns()
    message = await the_message(sid)
    for _ in range(2):
        await make_due((await attachment_of(message.id)).id)
        await dispatch.fetch_media_once()
    attachment = await attachment_of(message.id)
    assert attachment.media_state is MediaState.REFUSED
    assert attachment.refused_reason == (
        "falha ao baixar a mídia (HTTP 500); desistimos após 3 tentativas"
    )
    assert await fetches(stack, media) == 3
    assert await replies(message.conversation_id) == [ENGINE_DOWN_REPLY]


async def test_two_fetchers_never_download_one_file_twice(
    stack: TwilioStack, crash_after_ack: None
) -> None:
    media = await stack.sim_media(png(), "image/png")
    sid = new_sid("MM")
    await stack.post_signed(MESSAGE_PATH, photo_form(media, sid))
    await asyncio.gather(fetching.fetch_due_media(), fetching.fetch_due_media())
    assert await fetches(stack, media) == 1
    message = await the_message(sid)
    assert (await attachment_of(message.id)).media_state is MediaState.STORED


# --- one open conversation per (channel, contact) --------------------------------------------


async def test_a_first_message_and_its_replay_together_open_one_conversation(
    stack: TwilioStack,
) -> None:
    """Seen under load on PostgreSQL: Twilio's replay of a new infringer's first webhook (the
    contact imported with the case, no conversation yet), 2 ms later, opened a second
    conversation for the same contact and case in 5 of 6 tries."""
    for attempt in range(8):
        phone = new_phone()
        case_id: int | None = None
        if attempt % 4:  # and, one time in four, a number nobody knows yet
            async with unit_of_work() as session:
                infringer = await make_infringer(session, phones=(phone,))
                case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
                case_id = case.id
        form = load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{phone}")
        responses = await asyncio.gather(
            stack.post_signed(MESSAGE_PATH, form), stack.post_signed(MESSAGE_PATH, form)
        )
        await wait_for_scheduled_turns()
        assert [r.status_code for r in responses] == [200, 200]
        async with unit_of_work() as session:
            contacts = list(
                await session.scalars(
                    sa.select(ContactPoint.id).where(
                        ContactPoint.kind == ContactKind.PHONE, ContactPoint.value == phone
                    )
                )
            )
            conversations = list(
                await session.scalars(
                    sa.select(Conversation.id).where(Conversation.contact_point_id.in_(contacts))
                )
            )
            stored = list(
                await session.scalars(
                    sa.select(Message).where(Message.provider_id == form["MessageSid"])
                )
            )
        assert len(contacts) == 1
        assert len(conversations) == 1
        assert stored[0].case_id == case_id
        assert len(stored) == 1 and stored[0].handled_at is not None
        # One turn: Rasa is not configured here, so the one turn is one hand-off reply.
        assert await replies(conversations[0]) == [ENGINE_DOWN_REPLY]


async def test_the_database_refuses_a_second_open_conversation(database_url: str) -> None:
    phone = new_phone()
    async with unit_of_work() as session:
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        contact_id = found.contact.id
        first = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=None
        )
        # The opener hands back the open one instead of opening another.
        again = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=None
        )
        assert again.id == first.id
    with pytest.raises(IntegrityError):
        async with unit_of_work() as session:
            session.add(
                Conversation(contact_point_id=contact_id, channel=Channel.WHATSAPP, address=phone)
            )
            await session.flush()
    async with unit_of_work() as session:
        closed = await session.get(Conversation, first.id)
        assert closed is not None
        closed.closed_at = utcnow()
    async with unit_of_work() as session:
        contact = await session.get(ContactPoint, contact_id)
        assert contact is not None
        reopened = await create_conversation(
            session, contact=contact, channel=Channel.WHATSAPP, address=phone, case=None
        )
        email = await create_conversation(
            session, contact=contact, channel=Channel.EMAIL, address=phone, case=None
        )
    assert len({first.id, reopened.id, email.id}) == 3


async def test_the_loser_of_a_concurrent_open_reads_the_winner(database_url: str) -> None:
    phone = new_phone()
    async with unit_of_work() as session:
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        contact_id = found.contact.id

    async def open_one() -> int:
        async with unit_of_work() as session:
            contact = await session.get(ContactPoint, contact_id)
            assert contact is not None
            conversation = await create_conversation(
                session, contact=contact, channel=Channel.WHATSAPP, address=phone, case=None
            )
            return conversation.id

    ids = await asyncio.gather(*(open_one() for _ in range(4)))
    assert len(set(ids)) == 1
