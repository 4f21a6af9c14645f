"""A WhatsApp notice to an opted-in phone, out of the outbox through the real twilio library to
the Twilio simulator: the approved Content SID with the notice link among its variables, and
the signed status callback marking it delivered."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.config import get_settings
from api.conversations.models import Channel, DeliveryStatus, Message
from api.db import unit_of_work
from api.outbox.worker import deliver_due
from api.outreach.models import OutreachItem
from api.outreach.service import do_create_batch, do_record_opt_in, run_due_outreach
from api.templates.service import load_catalog
from api.timeline.service import Actor
from tests.factories import make_brand, make_case, make_infringer
from tests.fixtures.twilio.harness import TwilioStack, eventually, new_phone, twilio_stack

pytestmark = pytest.mark.integration

SID = "HX" + "5e" * 16
# A Thursday, 10:00 in São Paulo.
NOW = dt.datetime(2026, 12, 10, 13, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack(callback_delay=0.1) as running:
        yield running


@pytest.fixture
async def sender(
    stack: TwilioStack, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TwilioWhatsAppSender]:
    monkeypatch.setattr(get_settings(), "template_content_sids", {"notificacao_extrajudicial": SID})
    load_catalog.cache_clear()
    built = TwilioWhatsAppSender.from_settings(get_settings())
    yield built
    await built.aclose()
    load_catalog.cache_clear()


async def delivered(message_id: int) -> bool:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id, populate_existing=True)
        return message is not None and message.delivery_status is DeliveryStatus.DELIVERED


async def test_a_whatsapp_notice_reaches_twilio_as_the_approved_template(
    stack: TwilioStack, sender: TwilioWhatsAppSender
) -> None:
    phone = new_phone()
    async with unit_of_work() as session:
        brand = await make_brand(session, name=f"Marca Zap {uuid.uuid4().hex[:8]}")
        case = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, name="Maria Eugênia", phones=(phone,)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        await do_record_opt_in(session, phone=phone, source="formulário do site", analyst_id=None)
        batch = await do_create_batch(
            session, case_ids=[case.id], channel=Channel.WHATSAPP, actor=Actor.system(), now=NOW
        )
        case_id, batch_id = case.id, batch.id
    assert (await run_due_outreach(now=NOW, batch_id=batch_id)).processed == 1
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutreachItem).where(OutreachItem.batch_id == batch_id)
        )
        assert item is not None and item.message_id is not None and item.conversation_id
        message_id, conversation_id = item.message_id, item.conversation_id
        notified = await session.get(Case, case_id)
        assert notified is not None and notified.status is CaseStatus.NOTIFICADO
        token, reference = notified.notice_token, notified.reference

    assert await deliver_due({Channel.WHATSAPP: sender}, conversation_id=conversation_id) == 1
    (sent,) = await stack.sim_messages(phone)
    assert sent["content_sid"] == SID
    variables = json.loads(sent["content_variables"])
    assert variables["1"] == "Maria"
    assert variables["3"] == reference
    assert variables["5"].endswith(f"/notificacao/{token}")
    assert await eventually(lambda: delivered(message_id))
