"""Alerts in real Chromium against the real service: an infringer's WhatsApp message (a signed
Twilio webhook) raises an "infringer replied" alert that appears, without a reload, in the open
panel of the analyst responsible for the case — the header's badge and the notification
centre — and only there; acknowledging it clears the badge."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from api.cases.models import Case
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel
from api.conversations.service import create_conversation
from api.db import unit_of_work
from api.devtools.twilio_simulator import MESSAGE_WEBHOOK_PATH, build_inbound_form, sign
from tests.browser.conftest import (
    PASSWORD,
    Service,
    seed_analyst,
    start_service,
    stop_service,
)
from tests.factories import make_case, make_infringer

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("database_url")]
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "alerts-browser-auth-token"
OUR_NUMBER = "whatsapp:+5511940000000"


@pytest.fixture
async def twilio_service(database_url: str, chromium: str) -> AsyncIterator[Service]:
    started = await start_service(
        database_url,
        {
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": OUR_NUMBER,
        },
    )
    yield started
    await stop_service(started)


async def open_panel(browser: Browser, base_url: str, email: str, path: str) -> Page:
    from playwright.async_api import expect

    context = await browser.new_context(locale="pt-BR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = await context.new_page()
    await page.goto(f"{base_url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.goto(f"{base_url}/painel{path}")
    await expect(page.locator("body")).to_have_attribute("data-live", "1")
    return page


async def test_an_inbound_message_raises_an_alert_in_the_owners_open_panel(
    twilio_service: Service, browser: Browser, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    owner_id, owner_email = await seed_analyst()
    _, other_email = await seed_analyst()
    phone = f"+55319{time.time_ns() % 10**8:08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="Joana Prado", phones=(phone,))
        case = await make_case(session, infringer=infringer)
        case.assignee_id = owner_id
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        case_id, reference = case.id, case.reference

    owner = await open_panel(browser, twilio_service.url, owner_email, "/alertas")
    other = await open_panel(browser, twilio_service.url, other_email, "/caixa")
    badge = owner.locator(".alertas-sino .alertas-contador")
    await expect(badge).to_have_count(0)

    url = twilio_service.url + MESSAGE_WEBHOOK_PATH
    async with httpx.AsyncClient(timeout=30) as client:
        # A first message from someone else warms the freshly started process up (imports,
        # connections), as any running service is.
        warm = build_inbound_form(
            account_sid=ACCOUNT_SID, to=OUR_NUMBER, sender=f"{phone[:-1]}9", body="oi"
        )
        await client.post(
            url, data=warm, headers={"X-Twilio-Signature": sign(url, warm, AUTH_TOKEN)}
        )
    form = build_inbound_form(
        account_sid=ACCOUNT_SID, to=OUR_NUMBER, sender=phone, body="recebi a notificação, e agora?"
    )
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        posted = await client.post(
            url, data=form, headers={"X-Twilio-Signature": sign(url, form, AUTH_TOKEN)}
        )
    assert posted.status_code in (200, 204), posted.text
    answered = time.monotonic()

    # Checked on every animation frame, so the delay measured is the page's, not a poll's.
    # A function, not an expression: Playwright evaluates an expression string with eval,
    # which the panel's CSP (script-src 'self') refuses.
    await owner.wait_for_function(
        "() => document.querySelector('.alertas-sino .alertas-contador')?.textContent.trim()"
        " === '1'",
        polling="raf",
        timeout=10_000,
    )
    delay = time.monotonic() - started
    await expect(badge).to_have_text("1")
    item = owner.locator(".alerta[data-kind='infringer_replied']")
    await expect(item).to_contain_text(f"Infrator respondeu ({reference})")
    after_answer = time.monotonic() - answered
    print(
        f"\nevent → alert in the browser: {delay * 1000:.0f} ms from the webhook's POST, "
        f"{after_answer * 1000:.0f} ms after its answer"
    )
    assert after_answer < 1.0  # live: no poll, no reload
    if screenshot_dir is not None:
        await owner.screenshot(path=str(screenshot_dir / "alertas.png"), full_page=True)

    # The other analyst's panel, open all along, shows no badge for someone else's case.
    await expect(other.locator(".alertas-sino")).to_have_text("Alertas")
    async with unit_of_work() as session:
        assert (await session.get(Case, case_id)) is not None

    await item.get_by_role("button", name="Marcar como visto").click()
    await expect(badge).to_have_count(0)
    await expect(owner.locator(".alerta[data-kind='infringer_replied']")).to_have_count(0)
    for page in (owner, other):
        await page.context.close()
