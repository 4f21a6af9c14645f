"""Replies leave through the address that wrote (issue 9, defect 4).

A Brazilian mobile is stored however the detection export wrote it (with or without the ninth
digit, with or without country code and punctuation); the infringer writes from a WhatsApp
account that may show the other form. The message must still match the contact and case, and
every reply — the bot's, the analyst's free text, the analyst's template — must go to the exact
`whatsapp:+…` address (the WaId) the message came from, and leave from the firm's number it was
written to, through the real twilio library against the Twilio-compatible simulator. E-mail likewise answers the address that wrote, never another
address of the same contact.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.analysts.models import Role
from api.channels.whatsapp_twilio.adapter import parse_form_body, parse_message_form, to_inbound
from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.config import get_settings
from api.contacts.models import ContactKind, ContactPoint
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation, Direction, Message
from api.conversations.outbound import Outbound, do_queue_outbound
from api.db import unit_of_work, utcnow
from api.handoff.service import do_claim, do_send_analyst_message
from api.identifiers.phones import normalize_phone, phone_variants
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.worker import deliver_due
from api.templates.service import load_catalog
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer
from tests.fixtures.twilio.harness import TwilioStack, new_sid, twilio_stack

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Area codes (DDD) in use in Brazil.
DDDS = tuple(
    int(ddd)
    for ddd in [
        "11",
        "12",
        "13",
        "14",
        "15",
        "16",
        "17",
        "18",
        "19",
        "21",
        "22",
        "24",
        "27",
        "28",
        "31",
        "32",
        "33",
        "34",
        "35",
        "37",
        "38",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "47",
        "48",
        "49",
        "51",
        "53",
        "54",
        "55",
        "61",
        "62",
        "63",
        "64",
        "65",
        "66",
        "67",
        "68",
        "69",
        "71",
        "73",
        "74",
        "75",
        "77",
        "79",
        "81",
        "82",
        "83",
        "84",
        "85",
        "86",
        "87",
        "88",
        "89",
        "91",
        "92",
        "93",
        "94",
        "95",
        "96",
        "97",
        "98",
        "99",
    ]
)


async def all_sim_messages(stack: TwilioStack) -> list[dict[str, Any]]:
    response = await stack.http.get(f"{stack.sim_url}/_sim/messages")
    response.raise_for_status()
    messages: list[dict[str, Any]] = response.json()["messages"]
    return messages


async def retire_phone(e164: str) -> None:
    """Hypothesis may draw a number an earlier example stored: give that contact another value."""
    async with unit_of_work() as session:
        await session.execute(
            sa.update(ContactPoint)
            .where(ContactPoint.kind == ContactKind.PHONE)
            .where(ContactPoint.value.in_(phone_variants(e164)))
            .values(value=sa.literal("retired-") + sa.cast(ContactPoint.id, sa.String))
        )


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str, str]:
    """(how the contact was stored, the E.164 WhatsApp shows, its WaId)."""
    ddd = draw(st.sampled_from(DDDS))
    first = draw(st.sampled_from("6789"))
    rest = draw(st.text("0123456789", min_size=7, max_size=7))
    old = f"{first}{rest}"  # 8-digit subscriber, as before 2016
    stored_with_nine = draw(st.booleans())
    subscriber = f"9{old}" if stored_with_nine else old
    split = len(subscriber) - 4
    stored = draw(
        st.sampled_from(
            [
                f"+55{ddd}{subscriber}",
                f"+55 {ddd} {subscriber[:split]}-{subscriber[split:]}",
                f"({ddd}) {subscriber[:split]}-{subscriber[split:]}",
                f"{ddd}{subscriber}",
                f"0{ddd} {subscriber}",
                f"55 ({ddd}) {subscriber[:split]} {subscriber[split:]}",
            ]
        )
    )
    writes_with_nine = draw(st.booleans())
    e164 = f"+55{ddd}9{old}" if writes_with_nine else f"+55{ddd}{old}"
    return stored, e164, e164[1:]


@pytest.fixture(scope="module")
async def stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack(callback_delay=0.05) as running:
        yield running


@pytest.fixture
async def sender(stack: TwilioStack) -> AsyncIterator[TwilioWhatsAppSender]:
    built = TwilioWhatsAppSender.from_settings(get_settings())
    yield built
    await built.aclose()


@pytest.fixture
def template_sid(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", '{"primeiro_contato": "HX0123456789abcdef"}')
    get_settings.cache_clear()
    load_catalog.cache_clear()
    yield
    load_catalog.cache_clear()


# Two WhatsApp numbers of the firm: the reply leaves from the one the infringer wrote to.
OUR_NUMBERS = ("whatsapp:+14155238886", "whatsapp:+551130030000")


def webhook_form(e164: str, wa_id: str, our_number: str) -> bytes:
    """The form Twilio posts for a WhatsApp message from this account (as stored fixtures)."""
    from urllib.parse import urlencode

    return urlencode(
        {
            "MessageSid": new_sid(),
            "AccountSid": get_settings().twilio.account_sid or "AC" + "0" * 32,
            "From": f"whatsapp:{e164}",
            "To": our_number,
            "Body": "oi, recebi a notificação",
            "WaId": wa_id,
            "ProfileName": "Loja",
            "NumMedia": "0",
        }
    ).encode()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(mobile=mobiles(), our_number=st.sampled_from(OUR_NUMBERS))
async def test_every_whatsapp_reply_goes_to_the_address_that_wrote(
    stack: TwilioStack,
    sender: TwilioWhatsAppSender,
    template_sid: None,
    mobile: tuple[str, str, str],
    our_number: str,
) -> None:
    stored, e164, wa_id = mobile
    stored_value = normalize_phone(stored)
    await retire_phone(stored_value)
    parsed = parse_message_form(parse_form_body(webhook_form(e164, wa_id, our_number)))

    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(stored_value,))
        case = await make_case(session, infringer=infringer)
        analyst = await make_analyst(session, role=Role.SUPERVISOR)
        received = await do_receive_message(session, to_inbound(parsed, received_at=utcnow()))
        conversation = received.conversation
        # Matched under either form: the contact stored, the infringer's case.
        assert conversation.case_id == case.id
        await do_queue_outbound(
            session,
            conversation=conversation,
            outbound=Outbound(text="Olá! Aqui é o atendimento."),
            actor=Actor.bot(),
        )
        # A person claims before writing (one write rule for API and panel: never beside the bot).
        await do_claim(session, conversation_id=conversation.id, analyst=analyst)
        await do_send_analyst_message(
            session, conversation_id=conversation.id, analyst=analyst, text="Sou a Ana."
        )
        await do_send_analyst_message(
            session, conversation_id=conversation.id, analyst=analyst, template="primeiro_contato"
        )
        conversation_id = conversation.id

    while await deliver_due({Channel.WHATSAPP: sender}, conversation_id=conversation_id):
        pass
    async with unit_of_work() as session:
        payloads = (
            await session.scalars(
                sa.select(OutboxItem.payload).where(OutboxItem.conversation_id == conversation_id)
            )
        ).all()
        sids = set(
            (
                await session.scalars(
                    sa.select(Message.provider_id).where(
                        Message.conversation_id == conversation_id,
                        Message.direction == Direction.OUTBOUND,
                    )
                )
            ).all()
        )
    assert [p["to"] for p in payloads] == [e164] * 3
    sent = [m for m in await all_sim_messages(stack) if m["sid"] in sids]
    assert len(sent) == 3
    assert {m["to"] for m in sent} == {f"whatsapp:{e164}"}
    assert {m["to"].removeprefix("whatsapp:+") for m in sent} == {wa_id}
    assert {m["from"] for m in sent} == {our_number}


async def test_a_conversation_we_started_follows_the_form_the_infringer_answers_from(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    """A conversation opened with the stored number (ninth digit) moves to the account's own
    form as soon as the infringer writes from it, so every later reply reaches that account."""
    old = f"{uuid.uuid4().int % 10**7:07d}"
    stored, written = f"+55119{8}{old}", f"+5511{8}{old}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(stored,))
        await make_case(session, infringer=infringer)
        first = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=new_sid(),
                sender=f"whatsapp:{stored}",
                text="oi",
                received_at=utcnow(),
                raw={},
            ),
        )
        assert first.conversation.address == stored
        second = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=new_sid(),
                sender=f"whatsapp:{written}",
                text="é o mesmo número",
                received_at=utcnow(),
                raw={},
            ),
        )
        assert second.conversation.id == first.conversation.id
        await do_queue_outbound(
            session,
            conversation=second.conversation,
            outbound=Outbound(text="Certo."),
            actor=Actor.bot(),
        )
        conversation_id = second.conversation.id
    await deliver_due({Channel.WHATSAPP: sender}, conversation_id=conversation_id)
    [message] = await stack.sim_messages(f"whatsapp:{written}")
    assert message["to"] == f"whatsapp:{written}"


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    count=st.integers(min_value=2, max_value=4),
    writer=st.integers(min_value=0, max_value=3),
    shout=st.booleans(),
)
async def test_every_e_mail_reply_goes_to_the_address_that_wrote(
    database_url: str, count: int, writer: int, shout: bool
) -> None:
    tag = uuid.uuid4().hex[:8]
    addresses = [f"contato{i}-{tag}@loja{tag}.com.br" for i in range(count)]
    wrote_from = addresses[writer % count]
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=tuple(addresses))
        case = await make_case(session, infringer=infringer)
        analyst = await make_analyst(session, role=Role.SUPERVISOR)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{tag}@loja{tag}.com.br>",
                sender=wrote_from.upper() if shout else wrote_from,
                text="Recebi a notificação.",
                subject="Notificação",
                received_at=utcnow(),
                raw={},
            ),
        )
        assert received.conversation.case_id == case.id
        await do_claim(session, conversation_id=received.conversation.id, analyst=analyst)
        await do_send_analyst_message(
            session, conversation_id=received.conversation.id, analyst=analyst, text="Olá."
        )
        conversation = await session.get(Conversation, received.conversation.id)
        assert conversation is not None
        payloads = (
            await session.scalars(
                sa.select(OutboxItem.payload).where(OutboxItem.conversation_id == conversation.id)
            )
        ).all()
        # Nothing is sent here: settle the row so no later test's worker pass delivers it.
        await session.execute(
            sa.update(OutboxItem)
            .where(OutboxItem.conversation_id == conversation.id)
            .values(state=OutboxState.DONE, done_at=utcnow())
        )
    # The contact has other addresses; only the one that wrote is answered.
    assert [p["to"] for p in payloads] == [wrote_from]
