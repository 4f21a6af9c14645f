"""WhatsApp end to end: a signed Twilio webhook in, a real Rasa turn, the reply delivered to the
Twilio-compatible server by the outbox worker through the real twilio library."""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
from decimal import Decimal

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.conversations.models import Conversation, Direction, Message
from api.db import unit_of_work, utcnow
from api.engine.dispatch import wait_for_scheduled_turns
from tests.e2e.stack import WHATSAPP_FROM, Stack
from tests.factories import make_brand, make_case, make_infringer, valid_cpf

pytestmark = pytest.mark.e2e
_n = itertools.count(1)


def form(phone: str, body: str, sid: str | None = None) -> dict[str, str]:
    return {
        "MessageSid": sid or "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 31 + "7",
        "From": f"whatsapp:{phone}",
        "To": WHATSAPP_FROM,
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Maria",
        "WaId": phone.lstrip("+"),
    }


async def notified_case(phone: str, cpf: str | None = None) -> str:
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=Decimal("2500.00"),
            floor_amount=Decimal("1500.00"),
            max_installments=6,
            min_installment_amount=Decimal("250.00"),
        )
        infringer = await make_infringer(session, name="Maria Souza", document=cpf, phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = Decimal("2500.00")
        case.response_deadline = (utcnow() + dt.timedelta(days=8)).date()
        return case.reference


async def test_the_infringer_asks_the_amount_and_the_reply_reaches_twilio(stack: Stack) -> None:
    phone = f"+55119{88000000 + next(_n):08d}"
    await notified_case(phone)
    sid = "SM" + secrets.token_hex(16)
    first = await stack.webhook(form(phone, "quanto é pra resolver?", sid))
    assert first.status_code == 200
    replies = await stack.replies_to(phone, count=1)
    assert len(replies) == 1
    reply = replies[0]
    assert reply["to"] == f"whatsapp:{phone}" and reply["from"] == WHATSAPP_FROM
    assert "R$ 2.500,00" in reply["body"]

    # Twilio retries the same webhook: stored once, answered once.
    again = await stack.webhook(form(phone, "quanto é pra resolver?", sid))
    assert again.status_code == 200
    await wait_for_scheduled_turns()
    async with unit_of_work() as session:
        inbound = await session.scalar(
            sa.select(sa.func.count()).select_from(Message).where(Message.provider_id == sid)
        )
        message = await session.scalar(sa.select(Message).where(Message.provider_id == sid))
    assert inbound == 1
    assert message is not None and message.intent == "ask_amount"
    assert message.intent_confidence is not None and message.intent_confidence > 0.4
    assert len(await stack.replies_to(phone, count=2, timeout=1.5)) == 1


async def test_an_unknown_number_is_asked_to_identify_and_then_linked(stack: Stack) -> None:
    owner_phone = f"+55219{89000000 + next(_n):08d}"
    cpf = valid_cpf(900 + next(_n))
    reference = await notified_case(owner_phone, cpf)
    stranger = f"+55319{89000000 + next(_n):08d}"
    await stack.webhook(form(stranger, "oi, recebi uma notificação"))
    asked = await stack.replies_to(stranger, count=1)
    assert "referência" in asked[0]["body"] and "CPF" in asked[0]["body"]
    await stack.webhook(form(stranger, f"meu cpf é {cpf}"))
    linked = await stack.replies_to(stranger, count=2)
    assert reference in linked[1]["body"]
    async with unit_of_work() as session:
        conversation = await session.scalar(
            sa.select(Conversation).where(Conversation.address == stranger)
        )
        bot_messages = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(
                Message.conversation_id == conversation.id,  # type: ignore[union-attr]
                Message.direction == Direction.OUTBOUND,
            )
        )
    assert conversation is not None and conversation.case_id is not None
    assert bot_messages == 2
