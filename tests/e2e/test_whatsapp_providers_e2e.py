"""WhatsApp end to end through every provider beyond Twilio: the provider's simulator posts an
authenticated webhook (Meta: signed; 360dialog, Z-API, UltraMsg: their secrets), a real Rasa turn
answers, and the outbox worker delivers the reply through the same provider and number; the
provider's retry of the same webhook is stored and answered once."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.config import get_settings
from api.conversations.models import Conversation, Message
from api.db import unit_of_work, utcnow
from api.devtools.whatsapp_provider_sim import SimConfig, SimulatorThread
from api.engine.dispatch import wait_for_scheduled_turns
from tests.e2e.stack import Stack, running_stack
from tests.factories import make_brand, make_case, make_infringer
from tests.fixtures.twilio.harness import new_phone
from tests.helpers.whatsapp_providers import PROVIDERS, provider_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def providers(
    database_url: str,
) -> AsyncIterator[tuple[Stack, dict[str, SimulatorThread]]]:
    """The whole product with a real Rasa and the four providers' simulators beside Twilio's."""
    async with running_stack() as stack:
        sims: dict[str, SimulatorThread] = {}
        with pytest.MonkeyPatch.context() as mp:
            try:
                for provider in PROVIDERS:
                    sim = SimulatorThread(
                        SimConfig(
                            provider=provider,
                            webhook_base=stack.service_url,
                            callback_delay_seconds=0.05,
                        )
                    ).start()
                    sims[provider] = sim
                    for key, value in provider_env(provider, sim.config, sim.url).items():
                        mp.setenv(key, value)
                # Adapters read the settings when they send: the running worker sees these.
                get_settings.cache_clear()
                yield stack, sims
            finally:
                for sim in sims.values():
                    sim.stop()
        get_settings.cache_clear()


async def notified_case(phone: str) -> None:
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=Decimal("2500.00"),
            floor_amount=Decimal("1500.00"),
            max_installments=6,
            min_installment_amount=Decimal("250.00"),
        )
        infringer = await make_infringer(session, name="Maria Souza", phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = Decimal("2500.00")
        case.response_deadline = (utcnow() + dt.timedelta(days=8)).date()


async def replies(stack: Stack, sim: SimulatorThread, phone: str) -> list[dict[str, Any]]:
    response = await stack.http.get(f"{sim.url}/_sim/messages", params={"to": phone, "wait": 20.0})
    response.raise_for_status()
    found: list[dict[str, Any]] = response.json()["messages"]
    return found


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_reply_to_an_amount_question_leaves_through_the_same_provider(
    providers: tuple[Stack, dict[str, SimulatorThread]], provider: str
) -> None:
    stack, sims = providers
    sim = sims[provider]
    phone = new_phone()  # random: the session database is shared with the other e2e modules
    await notified_case(phone)

    first = await stack.http.post(
        f"{sim.url}/_sim/inbound",
        json={"from": phone, "body": "quanto é pra resolver?", "profile_name": "Maria"},
    )
    assert first.json()["status"] == 200
    answered = await replies(stack, sim, phone)
    payload = first.json()["payload"]
    message_id = (
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        if provider in ("meta", "360dialog")
        else payload["messageId"]
        if provider == "zapi"
        else payload["data"]["id"]
    )
    # The provider retries the same webhook: stored once, answered once.
    again = await stack.http.post(
        f"{sim.url}/_sim/inbound",
        json={"from": phone, "body": "quanto é pra resolver?", "message_id": message_id},
    )
    assert again.json()["status"] == 200
    await wait_for_scheduled_turns()

    assert len(answered) == 1 and "R$ 2.500,00" in answered[0]["body"]
    async with unit_of_work() as session:
        stored = list(
            await session.scalars(sa.select(Message).where(Message.provider_id == message_id))
        )
        assert len(stored) == 1 and stored[0].intent == "ask_amount"
        conversation = await session.get(Conversation, stored[0].conversation_id)
    assert conversation is not None and conversation.provider == provider
    assert conversation.provider_number == sim.config.number
    response = await stack.http.get(f"{sim.url}/_sim/messages", params={"to": phone})
    assert len(response.json()["messages"]) == 1
