"""Outbound WhatsApp through the real twilio library against the Twilio simulator, the outbox
worker's retries and failures, and signed status callbacks arriving in any order."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.utils import format_datetime

import pytest
import sqlalchemy as sa

from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.config import get_settings
from api.conversations.delivery import do_advance_delivery
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, DeliveryStatus, Message
from api.conversations.outbound import Outbound, TemplateRef, do_queue_outbound
from api.db import get_engine, unit_of_work, utcnow
from api.errors import ChannelDeliveryError
from api.events.models import StoredEvent
from api.events.service import to_record
from api.outbox import service as outbox_service
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.senders import Envelope, SendResult
from api.outbox.service import do_mark_sent, do_mark_sent_at_once
from api.outbox.worker import deliver_due
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.fixtures.twilio.harness import (
    AUTH_TOKEN,
    STATUS_PATH,
    WHATSAPP_FROM,
    TwilioStack,
    eventually,
    load_form,
    new_phone,
    new_sid,
    twilio_stack,
)
from tests.helpers.events import capture_events

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack(callback_delay=0.1) as running:
        yield running


@pytest.fixture
async def sender(stack: TwilioStack) -> AsyncIterator[TwilioWhatsAppSender]:
    built = TwilioWhatsAppSender.from_settings(get_settings())
    yield built
    await built.aclose()


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_service, "backoff_seconds", lambda attempt: 0.0)


@dataclass(frozen=True)
class Queued:
    phone: str
    conversation_id: int
    message_id: int
    outbox_id: int


async def queue_reply(
    text: str = "Olá! Recebemos sua mensagem.", template: TemplateRef | None = None
) -> Queued:
    """An infringer writes (the 24-hour window opens) and a reply is put in the outbox."""
    phone = new_phone()
    async with unit_of_work() as session:
        got = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=new_sid(),
                sender=f"whatsapp:{phone}",
                text="oi",
                received_at=utcnow(),
                raw={},
                answerable=False,
            ),
        )
        message = await do_queue_outbound(
            session,
            conversation=got.conversation,
            outbound=Outbound(text=text, template=template),
            actor=Actor.bot(),
        )
        outbox_id = await session.scalar(
            sa.select(OutboxItem.id).where(OutboxItem.message_id == message.id)
        )
        assert outbox_id is not None
        return Queued(phone, got.conversation.id, message.id, outbox_id)


async def outbox_row(outbox_id: int) -> OutboxItem:
    async with unit_of_work() as session:
        item = await session.get(OutboxItem, outbox_id)
        assert item is not None
        return item


async def message_row(message_id: int) -> Message:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def deliver(sender: TwilioWhatsAppSender, queued: Queued) -> OutboxItem:
    """Worker passes until this row has been attempted once more (other tests' rows share the
    outbox, and one pass takes at most 20)."""
    before = (await outbox_row(queued.outbox_id)).attempts
    for _ in range(50):
        await deliver_due({Channel.WHATSAPP: sender})
        item = await outbox_row(queued.outbox_id)
        if item.attempts > before:
            return item
    raise AssertionError("the outbox row was never attempted")


async def status_is(message_id: int, status: DeliveryStatus) -> bool:
    return (await message_row(message_id)).delivery_status is status


async def test_a_reply_goes_out_through_the_twilio_library_and_is_delivered(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    queued = await queue_reply("Olá! Sou o assistente da Tratativa.")
    item = await deliver(sender, queued)

    assert item.state is OutboxState.DONE
    (sent,) = await stack.sim_messages(queued.phone)
    assert sent["to"] == f"whatsapp:{queued.phone}"
    assert sent["from"] == WHATSAPP_FROM
    assert sent["body"] == "Olá! Sou o assistente da Tratativa."
    assert sent["status_callback"] == (
        f"{stack.public_base_url}{STATUS_PATH}?mid={queued.message_id}"
    )
    message = await message_row(queued.message_id)
    assert message.provider_id == sent["sid"]
    # The simulator reports sent, then delivered, on signed callbacks to the service.
    assert await eventually(lambda: status_is(queued.message_id, DeliveryStatus.DELIVERED))


async def test_twilio_500_then_success_is_retried_and_sent_once(
    stack: TwilioStack, sender: TwilioWhatsAppSender, no_backoff: None
) -> None:
    queued = await queue_reply()
    await stack.sim_fault(status=500, count=1, to=f"whatsapp:{queued.phone}")

    first = await deliver(sender, queued)
    assert (first.state, first.attempts) == (OutboxState.PENDING, 1)
    assert first.last_error is not None and "Twilio 500" in first.last_error
    assert await stack.sim_messages(queued.phone) == []

    second = await deliver(sender, queued)
    assert (second.state, second.attempts) == (OutboxState.DONE, 2)
    assert len(await stack.sim_messages(queued.phone)) == 1
    assert await eventually(lambda: status_is(queued.message_id, DeliveryStatus.DELIVERED))


async def test_twilio_429_is_retried(
    stack: TwilioStack, sender: TwilioWhatsAppSender, no_backoff: None
) -> None:
    queued = await queue_reply()
    await stack.sim_fault(status=429, count=1, to=f"whatsapp:{queued.phone}")
    assert (await deliver(sender, queued)).state is OutboxState.PENDING
    assert (await deliver(sender, queued)).state is OutboxState.DONE
    assert len(await stack.sim_messages(queued.phone)) == 1
    assert await eventually(lambda: status_is(queued.message_id, DeliveryStatus.DELIVERED))


def _naive(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=None) if value.tzinfo else value


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_a_429_retry_after_is_honoured_by_the_outbox_schedule(
    stack: TwilioStack, sender: TwilioWhatsAppSender, no_backoff: None, form: str
) -> None:
    """Issue 9: the backoff was random and could retry sooner than Twilio allowed."""
    queued = await queue_reply()
    wait = 120
    before = utcnow()
    retry_after = (
        str(wait)
        if form == "seconds"
        else format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait), usegmt=True)
    )
    await stack.sim_fault(
        status=429, code=20429, count=1, to=f"whatsapp:{queued.phone}", retry_after=retry_after
    )
    item = await deliver(sender, queued)
    assert (item.state, item.attempts) == (OutboxState.PENDING, 1)
    assert item.last_error is not None and "429" in item.last_error
    earliest = _naive(before) + dt.timedelta(seconds=wait - 2)  # an HTTP-date has 1 s precision
    assert _naive(item.next_attempt_at) >= earliest
    # Passes inside that time leave the row alone.
    for _ in range(3):
        await deliver_due({Channel.WHATSAPP: sender}, conversation_id=queued.conversation_id)
    assert (await outbox_row(queued.outbox_id)).attempts == 1
    assert await stack.sim_messages(queued.phone) == []
    async with unit_of_work() as session:  # no later test's pass should meet this row
        settled = await session.get(OutboxItem, queued.outbox_id)
        assert settled is not None
        settled.state = OutboxState.DONE


async def test_a_permanent_21211_fails_the_message_and_shows_on_the_timeline(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    queued = await queue_reply()
    await stack.sim_fault(status=400, code=21211, count=1, to=f"whatsapp:{queued.phone}")

    item = await deliver(sender, queued)

    assert (item.state, item.attempts) == (OutboxState.FAILED, 1)
    message = await message_row(queued.message_id)
    assert message.delivery_status is DeliveryStatus.FAILED
    assert message.delivery_error is not None and "21211" in message.delivery_error
    async with unit_of_work() as session:
        entries = list(
            await session.scalars(
                sa.select(TimelineEntry).where(
                    TimelineEntry.message_id == queued.message_id,
                    TimelineEntry.kind == EntryKind.DELIVERY,
                )
            )
        )
    assert len(entries) == 1
    assert "erro permanente" in entries[0].summary and "21211" in entries[0].summary
    assert await stack.sim_messages(queued.phone) == []


async def test_a_template_is_sent_as_content_sid_and_variables(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    variables = {"1": "Ana", "2": "INF-2026-000123", "3": "R$ 1.200,00"}
    queued = await queue_reply(
        template=TemplateRef(
            content_sid="HX0123456789abcdef0123456789abcdef",
            variables=variables,
            rendered_text="Olá, Ana. Sobre o caso INF-2026-000123: R$ 1.200,00.",
        )
    )
    assert (await deliver(sender, queued)).state is OutboxState.DONE
    (sent,) = await stack.sim_messages(queued.phone)
    assert sent["content_sid"] == "HX0123456789abcdef0123456789abcdef"
    assert json.loads(sent["content_variables"]) == variables
    assert sent["body"] == ""
    assert await eventually(lambda: status_is(queued.message_id, DeliveryStatus.DELIVERED))


async def test_network_errors_are_retryable() -> None:
    unreachable = TwilioWhatsAppSender(
        account_sid="AC" + "1" * 32,
        auth_token=AUTH_TOKEN,
        whatsapp_from=WHATSAPP_FROM,
        messaging_service_sid=None,
        status_callback_url=None,
        api_base_url="http://127.0.0.1:9",  # discard port: nothing listens
    )
    envelope = Envelope(
        message_id=0, conversation_id=0, channel=Channel.WHATSAPP, to=new_phone(), text="oi"
    )
    with pytest.raises(ChannelDeliveryError) as caught:
        await unreachable.send(envelope)
    await unreachable.aclose()
    assert caught.value.retryable is True


# --- status callbacks ---------------------------------------------------------------------


async def sent_message(provider_id: str) -> Queued:
    """A reply the provider accepted (as the worker records it), without a real send."""
    queued = await queue_reply()
    async with unit_of_work() as session:
        await session.execute(
            sa.update(OutboxItem)
            .where(OutboxItem.id == queued.outbox_id)
            .values(state=OutboxState.IN_FLIGHT, attempts=1)
        )
        await do_mark_sent(
            session,
            item_id=queued.outbox_id,
            result=SendResult(provider_id=provider_id, status=DeliveryStatus.QUEUED),
        )
    return queued


async def callback(stack: TwilioStack, name: str, sid: str, *, query: str = "") -> int:
    form = load_form(name, MessageSid=sid)
    path = STATUS_PATH + (f"?{query}" if query else "")
    response = await stack.post_signed(path, form)
    return response.status_code


async def test_a_status_arriving_before_the_sid_is_stored_finds_its_message(
    stack: TwilioStack,
) -> None:
    queued = await queue_reply()  # still in flight: no provider id stored yet
    sid = new_sid()
    assert await callback(stack, "status_sent", sid, query=f"mid={queued.message_id}") == 200
    message = await message_row(queued.message_id)
    assert (message.provider_id, message.delivery_status) == (sid, DeliveryStatus.SENT)
    # Another message's id in the URL cannot steal a status: it already has a provider id.
    other = await sent_message(new_sid())
    assert await callback(stack, "status_read", new_sid(), query=f"mid={other.message_id}") == 200
    assert (await message_row(other.message_id)).delivery_status is DeliveryStatus.QUEUED


async def test_status_callbacks_out_of_order_never_go_backwards(stack: TwilioStack) -> None:
    sid = new_sid()
    queued = await sent_message(sid)

    assert await callback(stack, "status_delivered", sid) == 200
    assert await callback(stack, "status_sent", sid) == 200
    assert (await message_row(queued.message_id)).delivery_status is DeliveryStatus.DELIVERED

    assert await callback(stack, "status_read", sid) == 200
    assert (await message_row(queued.message_id)).delivery_status is DeliveryStatus.READ


@pytest.mark.parametrize("seed", range(4))
async def test_concurrent_reports_in_any_order_move_forward_once_each(
    stack: TwilioStack, seed: int
) -> None:
    """Twilio retries and reorders callbacks: sent, delivered and read, each twice, all at once.
    The message ends read, and its message.delivered events only ever go forward, one per move."""
    sid = new_sid()
    queued = await sent_message(sid)
    names = ["status_sent", "status_delivered", "status_read"] * 2
    random.Random(seed).shuffle(names)

    codes = await asyncio.gather(*(callback(stack, name, sid) for name in names))

    assert set(codes) == {200}
    assert (await message_row(queued.message_id)).delivery_status is DeliveryStatus.READ
    async with unit_of_work() as session:
        reported = list(
            await session.scalars(
                sa.select(StoredEvent.payload["status"].as_string())
                .where(
                    StoredEvent.kind == "message.delivered",
                    StoredEvent.payload["message_id"].as_integer() == queued.message_id,
                )
                .order_by(StoredEvent.id)
            )
        )
    order = ["sent", "delivered", "read"]
    assert reported[-1] == "read"
    assert reported == sorted(set(reported), key=order.index)  # forward only, no repeats


async def delivered_statuses(message_id: int) -> list[str]:
    return [str(row.payload["status"]) for row in await _delivered_rows(message_id)]


async def record_answer(item_id: int, result: SendResult, *, way: str) -> None:
    """The provider's answer to our send, recorded as the outbox worker does ("at once": one
    statement without a session where it can, else a session) or always in a session."""
    if way == "at once":
        taken = await do_mark_sent_at_once(get_engine(), item_id=item_id, result=result)
        # The way without a session is the usual answer's (queued) on PostgreSQL, and only it.
        on_postgresql = get_engine().dialect.name == "postgresql"
        assert taken == (on_postgresql and result.status is DeliveryStatus.QUEUED)
        if taken:
            return
    async with unit_of_work() as session:
        await do_mark_sent(session, item_id=item_id, result=result)


@pytest.mark.parametrize("way", ["session", "at once"])
@pytest.mark.parametrize("answer", [DeliveryStatus.QUEUED, DeliveryStatus.SENT])
async def test_the_send_answer_after_a_faster_callback_keeps_the_status_and_stores_the_id(
    stack: TwilioStack, answer: DeliveryStatus, way: str
) -> None:
    """The provider's "delivered" callback arrived before its answer to our send call: the
    answer stores the provider's id and closes the outbox row, and moves nothing back."""
    queued = await queue_reply()
    sid = new_sid()
    assert await callback(stack, "status_delivered", sid, query=f"mid={queued.message_id}") == 200
    await record_answer(queued.outbox_id, SendResult(provider_id=sid, status=answer), way=way)
    message = await message_row(queued.message_id)
    assert (message.provider_id, message.delivery_status) == (sid, DeliveryStatus.DELIVERED)
    assert await delivered_statuses(queued.message_id) == ["delivered"]
    async with unit_of_work() as session:
        item = await session.get(OutboxItem, queued.outbox_id)
        assert item is not None and item.state is OutboxState.DONE and item.done_at is not None


@pytest.mark.parametrize("way", ["session", "at once"])
@pytest.mark.parametrize("answer", [DeliveryStatus.QUEUED, DeliveryStatus.SENT])
async def test_the_send_answer_moves_a_pending_message_forward(
    answer: DeliveryStatus, way: str
) -> None:
    queued = await queue_reply()
    sid = new_sid()
    await record_answer(queued.outbox_id, SendResult(provider_id=sid, status=answer), way=way)
    message = await message_row(queued.message_id)
    assert (message.provider_id, message.delivery_status) == (sid, answer)
    assert message.status_updated_at is not None
    async with unit_of_work() as session:
        item = await session.get(OutboxItem, queued.outbox_id)
        assert item is not None and item.state is OutboxState.DONE and item.done_at is not None
    # Only what the provider moved forward is an event (queued is not: sent, delivered, read).
    expected = ["sent"] if answer is DeliveryStatus.SENT else []
    assert await delivered_statuses(queued.message_id) == expected


async def test_a_failed_callback_records_the_error_code(stack: TwilioStack) -> None:
    sid = new_sid()
    queued = await sent_message(sid)
    assert await callback(stack, "status_sent", sid) == 200

    assert await callback(stack, "status_failed_30008", sid) == 200

    message = await message_row(queued.message_id)
    assert message.delivery_status is DeliveryStatus.FAILED
    assert message.delivery_error == "30008: Unknown error"
    async with unit_of_work() as session:
        summaries = list(
            await session.scalars(
                sa.select(TimelineEntry.summary).where(
                    TimelineEntry.message_id == queued.message_id,
                    TimelineEntry.kind == EntryKind.DELIVERY,
                )
            )
        )
    assert len(summaries) == 1 and "30008" in summaries[0]


async def test_a_callback_for_an_unknown_message_is_acknowledged(stack: TwilioStack) -> None:
    assert await callback(stack, "status_delivered", new_sid()) == 200


async def test_an_unsigned_callback_is_refused_and_changes_nothing(stack: TwilioStack) -> None:
    sid = new_sid()
    queued = await sent_message(sid)
    form = load_form("status_delivered", MessageSid=sid)
    forged = await stack.post_signed(STATUS_PATH, form, token="guessed-token")
    missing = await stack.http.post(stack.service_url + STATUS_PATH, data=form)
    assert (forged.status_code, missing.status_code) == (403, 403)
    assert (await message_row(queued.message_id)).delivery_status is DeliveryStatus.QUEUED


async def _delivered_rows(message_id: int) -> list[StoredEvent]:
    async with unit_of_work() as session:
        return list(
            await session.scalars(
                sa.select(StoredEvent)
                .where(
                    StoredEvent.kind == "message.delivered",
                    StoredEvent.payload["message_id"].as_integer() == message_id,
                )
                .order_by(StoredEvent.id)
            )
        )


async def test_a_status_report_records_the_same_event_whichever_way_it_is_written(
    stack: TwilioStack,
) -> None:
    """A callback (one statement without a session on PostgreSQL) and the session's way
    (do_advance_delivery, as the other providers' webhooks take it) write the same
    message.delivered row; the callback's is seen by captures as after any commit."""
    by_callback_sid, by_session_sid = new_sid(), new_sid()
    by_callback = await sent_message(by_callback_sid)
    by_session = await sent_message(by_session_sid)

    before = utcnow()
    with capture_events() as captured:
        assert await callback(stack, "status_delivered", by_callback_sid) == 200
    after = utcnow()
    async with unit_of_work() as session:
        moved = await do_advance_delivery(
            session,
            channel=Channel.WHATSAPP,
            provider_id=by_session_sid,
            status=DeliveryStatus.DELIVERED,
        )
    assert moved == by_session.message_id

    [written] = await _delivered_rows(by_callback.message_id)
    [emitted] = await _delivered_rows(by_session.message_id)
    message = await message_row(by_callback.message_id)
    assert message.delivery_status is DeliveryStatus.DELIVERED
    assert (written.case_id, written.conversation_id) == (message.case_id, message.conversation_id)
    shape = ("kind", "channel", "actor_kind", "actor_id")
    assert [getattr(written, name) for name in shape] == [getattr(emitted, name) for name in shape]
    assert written.payload == {"message_id": by_callback.message_id, "status": "delivered"}
    assert set(written.payload) == set(emitted.payload)
    assert before <= written.occurred_at <= after
    assert (written.tx_id > 0) == (emitted.tx_id > 0)  # the writing transaction's id on PostgreSQL
    # What a consumer reads is what the captures saw.
    assert [to_record(written).event] == [
        event for event in captured if getattr(event, "message_id", None) == message.id
    ]
    # A repeated report moves nothing and records nothing.
    assert await callback(stack, "status_delivered", by_callback_sid) == 200
    assert len(await _delivered_rows(by_callback.message_id)) == 1
