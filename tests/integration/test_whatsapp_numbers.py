"""Several WhatsApp numbers: the table admins manage (panel, CLI), the environment as the
single-number shortcut, and each reply leaving through the number the infringer wrote to."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest

from api.analysts.models import Role
from api.channels.numbers.models import Provider
from api.channels.numbers.service import (
    create_number,
    do_set_active,
    parse_route,
    reply_route,
)
from api.channels.numbers.webhooks import do_receive_webhook
from api.channels.whatsapp_cloud.adapter import parse_webhook
from api.config import get_settings
from api.db import unit_of_work
from api.devtools.whatsapp_provider_sim import SimConfig, build_message_payload, encode
from api.errors import Conflict, ValidationFailed
from tests.fixtures.twilio.harness import new_phone
from tests.integration.test_panel import csrf_of, login, panel_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


def our_number() -> str:
    return f"+551130{random.randint(100_000, 999_999)}"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_reply_leaves_through_the_number_the_infringer_wrote_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("META_TOKEN_BRAND_B", "token-of-brand-b")
    get_settings.cache_clear()
    first, second = our_number(), our_number()
    account_a, account_b = str(random.randint(10**14, 10**15)), str(random.randint(10**14, 10**15))
    async with unit_of_work() as session:
        await create_number(session, provider="meta", number=first, account_id=account_a)
        await create_number(
            session,
            provider="meta",
            number=second,
            account_id=account_b,
            token_env="META_TOKEN_BRAND_B",
            label="Marca B",
        )
    phone = new_phone()
    for number, account in ((first, account_a), (second, account_b)):
        cfg = SimConfig(provider="meta", number=number, phone_number_id=account)
        parsed = parse_webhook(
            encode(build_message_payload(cfg, sender=phone, body=f"oi {number}")),
            provider=Provider.META,
            media_base="https://graph.facebook.com/v21.0",
        )
        async with unit_of_work() as session:
            received = await do_receive_webhook(session, Provider.META, parsed)
            conversation = received[0].conversation
            route = await reply_route(session, conversation)
            # The conversation keeps the number it was opened on; the reply follows the latest.
            assert (conversation.provider, conversation.provider_number) == ("meta", first)
            assert (route.provider, route.number, route.account_id) == (
                Provider.META,
                number,
                account,
            )
            assert parse_route(route.route) == (Provider.META, number)
    assert route.token is not None and route.token.get_secret_value() == "token-of-brand-b"
    get_settings.cache_clear()


async def test_numbers_are_checked_when_added() -> None:
    number = our_number()
    async with unit_of_work() as session:
        row = await create_number(session, provider="zapi", number=number, account_id="INST-X")
        with pytest.raises(Conflict):
            await create_number(session, provider="zapi", number=number, account_id="INST-Y")
        with pytest.raises(ValidationFailed):
            await create_number(session, provider="telegram", number=our_number())
        with pytest.raises(ValidationFailed):
            await create_number(session, provider="meta", number="12", account_id="1")
        with pytest.raises(ValidationFailed, match="NOME"):
            await create_number(
                session, provider="ultramsg", number=our_number(), token_env="abc secret-token"
            )
        await do_set_active(session, number_id=row.id, active=False)


async def test_admins_manage_numbers_in_the_panel_and_see_the_unofficial_warning(
    client: httpx.AsyncClient,
) -> None:
    admin = await login(client, Role.ADMIN)
    number = our_number()

    added = await client.post(
        "/painel/numeros",
        data={
            "csrf_token": admin.csrf,
            "provider": "ultramsg",
            "number": number,
            "account_id": "instance77",
            "token_env": "ULTRAMSG_TOKEN_77",
            "label": "Protótipo",
        },
    )
    page = await client.get("/painel/numeros")
    refused = await client.post(
        "/painel/numeros",
        data={"csrf_token": csrf_of(page.text), "provider": "meta", "number": "abc"},
    )

    assert added.status_code == 303
    assert page.status_code == 200
    assert number in page.text and "UltraMsg (não oficial)" in page.text
    assert 'data-aviso="nao-oficial"' in page.text
    assert "banido" in page.text and "não há aprovação de modelos" in page.text
    assert refused.status_code == 422 and "Número inválido" in refused.text


async def test_only_admins_reach_the_numbers_page(client: httpx.AsyncClient) -> None:
    await login(client, Role.SUPERVISOR)
    assert (await client.get("/painel/numeros")).status_code == 403
