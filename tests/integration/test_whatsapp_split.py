"""WhatsApp bodies over 1,600 characters: Twilio refuses them (error 21617), so the WhatsApp
composer sends a long reply as several messages cut on paragraph and sentence boundaries. Driven
through the real twilio library against the Twilio simulator, which refuses what Twilio refuses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from api.channels.whatsapp_twilio.composer import MAX_BODY_CHARS
from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.config import get_settings
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import AuthorKind, Channel, Direction, Message
from api.conversations.outbound import OutboundMessage, do_queue_message
from api.db import unit_of_work, utcnow
from api.errors import ChannelDeliveryError
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.senders import Envelope
from api.outbox.worker import deliver_due
from api.timeline.service import Actor
from tests.fixtures.twilio.harness import TwilioStack, new_phone, new_sid, twilio_stack

pytestmark = pytest.mark.integration

PARAGRAPH = (
    "Conforme a notificação extrajudicial, os anúncios listados reproduzem a marca sem "
    "autorização. Pedimos a retirada imediata de todos eles. O acordo proposto prevê o "
    "pagamento em parcelas, sem juros, e o encerramento do caso após a confirmação."
)


@pytest.fixture(scope="module")
async def stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack(callback_delay=0.1) as running:
        yield running


@pytest.fixture
async def sender(stack: TwilioStack) -> AsyncIterator[TwilioWhatsAppSender]:
    built = TwilioWhatsAppSender.from_settings(get_settings())
    yield built
    await built.aclose()


async def test_the_simulator_refuses_a_body_over_1600_characters_like_twilio(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    phone = new_phone()
    with pytest.raises(ChannelDeliveryError) as refused:
        await sender.send(
            Envelope(
                message_id=1,
                conversation_id=1,
                channel=Channel.WHATSAPP,
                to=f"whatsapp:{phone}",
                text="a" * (MAX_BODY_CHARS + 1),
            )
        )
    assert "21617" in str(refused.value)
    assert refused.value.retryable is False
    assert await stack.sim_messages(phone) == []


async def test_a_long_bot_reply_goes_out_as_several_messages_in_order(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    paragraphs = [f"{n}. {PARAGRAPH}" for n in range(1, 16)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 2 * MAX_BODY_CHARS
    phone = new_phone()
    async with unit_of_work() as session:
        got = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=new_sid(),
                sender=f"whatsapp:{phone}",
                text="pode explicar?",
                received_at=utcnow(),
                raw={},
                answerable=False,
            ),
        )
        conversation_id = got.conversation.id
        queued = await do_queue_message(
            session,
            conversation=got.conversation,
            message=OutboundMessage(author=AuthorKind.BOT, texts=(text,)),
            actor=Actor.bot(),
        )
    assert len(queued) == 3

    for _ in range(20):
        await deliver_due({Channel.WHATSAPP: sender}, conversation_id=conversation_id)
        async with unit_of_work() as session:
            states = (
                await session.scalars(
                    sa.select(OutboxItem.state)
                    .where(OutboxItem.conversation_id == conversation_id)
                    .order_by(OutboxItem.id)
                )
            ).all()
        if all(state is OutboxState.DONE for state in states):
            break
    assert states == [OutboxState.DONE] * 3

    sent = await stack.sim_messages(phone)
    bodies = [m["body"] for m in sent]
    assert len(bodies) == 3 and all(len(b) <= MAX_BODY_CHARS for b in bodies)
    # Cut between paragraphs: every part is whole paragraphs, and together they are the text.
    assert "\n\n".join(bodies) == text
    assert all(b.startswith(tuple(f"{n}. " for n in range(1, 16))) for b in bodies)
    async with unit_of_work() as session:
        stored = (
            await session.scalars(
                sa.select(Message.text)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.OUTBOUND,
                )
                .order_by(Message.id)
            )
        ).all()
    assert list(stored) == bodies
