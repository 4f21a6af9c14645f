"""The inbound pipeline decides what happens next: `do_receive_message` asks the installed turn
scheduler for the bot turn, after commit; adapters only verify, parse and call it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from api.contacts.models import ContactPoint
from api.conversations.inbound import InboundAttachment, InboundMessage, do_receive_message
from api.conversations.models import Attachment, Channel, Conversation, MediaState, Message
from api.conversations.scheduling import TurnRequest, get_turn_scheduler, turn_scheduler
from api.db import unit_of_work, utcnow
from api.engine import dispatch
from api.engine.dispatch import wait_for_scheduled_turns
from tests.fixtures.twilio.harness import (
    MESSAGE_PATH,
    TwilioStack,
    load_form,
    new_sid,
    twilio_stack,
)
from tests.helpers.turns import RecordingScheduler
from tests.integration.test_twilio_webhook import png

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
# DDD 84: numbers no other test module uses, so no conversation is shared with them.
_phone_seq = iter(range(10_000_000, 99_999_999, 7907))


def new_phone() -> str:
    return f"+55849{next(_phone_seq):08d}"


@pytest.fixture(autouse=True)
async def settled() -> AsyncIterator[None]:
    """Leave no pending turn or media behind: the worker-pass tests of other modules count
    every one in the database."""
    yield
    async with unit_of_work() as session:
        ours = (
            sa.select(Message.id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .join(ContactPoint, ContactPoint.id == Conversation.contact_point_id)
            .where(ContactPoint.value.like("%+55849%"))
        )
        ids = list((await session.scalars(ours)).all())
        await session.execute(
            sa.update(Attachment)
            .where(Attachment.message_id.in_(ids), Attachment.media_state == MediaState.PENDING)
            .values(media_state=MediaState.REFUSED, refused_reason="teste encerrado")
        )
        await session.execute(
            sa.update(Message)
            .where(Message.id.in_(ids), Message.handled_at.is_(None))
            .values(handled_at=utcnow())
        )


def inbound(phone: str, sid: str, **kw: Any) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=sid,
        sender=f"whatsapp:{phone}",
        text="oi",
        received_at=utcnow(),
        raw={"Body": "oi"},
        **kw,
    )


def sid() -> str:
    return f"SMsched{next(_phone_seq)}"


async def test_a_received_message_asks_for_exactly_one_turn_after_commit() -> None:
    scheduler = RecordingScheduler()
    with turn_scheduler(scheduler):
        async with unit_of_work() as session:
            received = await do_receive_message(session, inbound(new_phone(), sid()))
            await session.flush()
            assert scheduler.requests == []  # not before the commit
    assert scheduler.requests == [
        TurnRequest(
            conversation_id=received.conversation.id,
            message_id=received.message.id,
            channel=Channel.WHATSAPP,
            media_pending=False,
        )
    ]


async def test_a_rolled_back_message_asks_for_no_turn() -> None:
    scheduler = RecordingScheduler()
    message_sid = sid()
    with turn_scheduler(scheduler), pytest.raises(RuntimeError, match="after the insert"):
        async with unit_of_work() as session:
            await do_receive_message(session, inbound(new_phone(), message_sid))
            await session.flush()
            raise RuntimeError("the transaction fails after the insert")
    assert scheduler.requests == []
    async with unit_of_work() as session:
        assert (
            await session.scalar(
                Message.__table__.select().where(Message.provider_id == message_sid)
            )
            is None
        )  # a real rollback: nothing was kept


async def test_a_replay_and_an_unanswerable_message_ask_for_no_turn() -> None:
    scheduler = RecordingScheduler()
    phone, first = new_phone(), sid()
    with turn_scheduler(scheduler):
        async with unit_of_work() as session:
            await do_receive_message(session, inbound(phone, first))
        async with unit_of_work() as session:
            replay = await do_receive_message(session, inbound(phone, first))
        async with unit_of_work() as session:
            await do_receive_message(session, inbound(phone, sid(), answerable=False))
    assert replay.created is False
    assert len(scheduler.requests) == 1


async def test_a_message_with_media_to_fetch_says_so() -> None:
    scheduler = RecordingScheduler()
    media = InboundAttachment(
        content_type="image/png", data=None, source_url="https://media.invalid/1", size=10
    )
    with turn_scheduler(scheduler):
        async with unit_of_work() as session:
            await do_receive_message(session, inbound(new_phone(), sid(), attachments=(media,)))
    assert [r.media_pending for r in scheduler.requests] == [True]


async def test_without_a_scheduler_nothing_is_scheduled_and_a_debug_line_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert get_turn_scheduler() is None
    caplog.set_level(logging.DEBUG, logger="api.conversations.scheduling")
    async with unit_of_work() as session:
        received = await do_receive_message(session, inbound(new_phone(), sid()))
    assert "no turn scheduler installed" in caplog.text
    async with unit_of_work() as session:
        message = await session.get(Message, received.message.id)
    assert message is not None and message.handled_at is None  # pending for the worker


# --- through the signed webhook: the adapter schedules nothing itself -------------------------


@pytest.fixture
async def recorded(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[RecordingScheduler]:
    """The app's scheduler (installed by create_app's middleware) only records."""
    scheduler = RecordingScheduler()
    monkeypatch.setattr(dispatch.BACKGROUND_TURNS, "request_turn", scheduler.request_turn)
    yield scheduler


@pytest.fixture
async def stack(recorded: RecordingScheduler) -> AsyncIterator[TwilioStack]:
    async with twilio_stack() as running:
        yield running
    await wait_for_scheduled_turns()


async def test_the_webhook_gets_its_turn_from_the_pipeline_only(
    stack: TwilioStack, recorded: RecordingScheduler
) -> None:
    phone = new_phone()
    media = await stack.sim_media(png(), "image/png")
    text = load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{phone}")
    photo = load_form(
        "message_image_caption",
        MessageSid=new_sid(),
        From=f"whatsapp:{phone}",
        MediaUrl0=media["url"],
    )
    assert (await stack.post_signed(MESSAGE_PATH, text)).status_code == 200
    assert (await stack.post_signed(MESSAGE_PATH, photo)).status_code == 200
    assert (await stack.post_signed(MESSAGE_PATH, photo)).status_code == 200  # a replay
    assert [r.media_pending for r in recorded.requests] == [False, True]
    assert dispatch._tasks == set()  # nothing started besides what the scheduler was asked
