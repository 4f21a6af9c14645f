"""The analyst panel in real Chromium against the real service: login, a live escalation,
claim, reply, release, live events across processes, and an inert XSS payload."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa

from api.conversations.models import Conversation, Holder, Message
from api.db import unit_of_work
from api.outbox.models import OutboxItem
from tests.browser.conftest import (
    PASSWORD,
    Service,
    escalate,
    seed_analyst,
    seed_email_with_xss,
    seed_whatsapp_conversation,
    start_service,
    stop_service,
)

if TYPE_CHECKING:
    from playwright.async_api import Browser, Dialog, Page

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("database_url")]


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="pt-BR", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    yield opened
    await context.close()


async def log_in(page: Page, base_url: str, email: str) -> None:
    from playwright.async_api import expect

    await page.goto(f"{base_url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page).to_have_url(f"{base_url}/painel/caixa")
    # The event stream is subscribed (the server confirmed it with "ready").
    await expect(page.locator("body")).to_have_attribute("data-live", "1")


async def test_escalation_arrives_live_then_claim_reply_release(
    service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    console_errors: list[str] = []
    page.on(
        "console",
        lambda message: console_errors.append(message.text) if message.type == "error" else None,
    )
    _analyst_id, email = await seed_analyst()
    seeded = await seed_whatsapp_conversation()
    await log_in(page, service.url, email)
    row = page.locator(f"#conversa-{seeded.conversation_id}")
    await expect(row).to_have_count(0)

    # An escalation made elsewhere (the API, another analyst) shows up without a reload.
    await escalate(service.url, email, seeded.conversation_id, "infrator pediu atendimento humano")
    await expect(row).to_be_visible()
    await expect(row).to_contain_text("infrator pediu atendimento humano")
    await expect(row).to_contain_text("WhatsApp")
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "caixa.png"), full_page=True)

    await row.get_by_role("link", name="Abrir").click()
    state = page.locator("#estado")
    await expect(state).to_contain_text("Aguardando analista")
    await expect(page.locator(".msg.entrada img.midia")).to_be_visible()
    await expect(page.locator(".leitura").first).to_contain_text("ask_installments")
    await expect(page.locator(".janela")).to_contain_text("aberta até")

    await page.get_by_role("button", name="Assumir conversa").click()
    await expect(state).to_contain_text("Com você")

    reply = "Olá, Maria! Podemos parcelar em 3 vezes de R$ 500,00."
    await page.locator("#texto").fill(reply)
    await page.get_by_role("button", name="Enviar mensagem").click()
    sent = page.locator(".msg.saida.autor-analyst", has_text=reply)
    await expect(sent).to_be_visible()
    await expect(sent).to_contain_text("na fila de envio")
    async with unit_of_work() as session:
        message = await session.scalar(
            sa.select(Message).where(
                Message.conversation_id == seeded.conversation_id, Message.text == reply
            )
        )
        assert message is not None
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message.id)
        )
        assert item is not None and item.payload["to"] == seeded.address

    # The template picker previews with the case's data, server-side.
    await page.locator("#modelo").select_option("primeiro_contato")
    await expect(page.locator("#previa .previa")).to_contain_text("Olá, Maria")
    await page.locator("#modelo").select_option("lembrete_prazo")
    await expect(page.locator("#previa .erro")).to_contain_text("deadline")
    # htmx binds the swapped-in input when it settles; typing before that sends nothing.
    await expect(page.locator("#previa .htmx-added")).to_have_count(0)
    async with page.expect_response(lambda r: "/previa" in r.url and "var_deadline" in r.url):
        await page.locator("input[name='var_deadline']").fill("15/12/2026")
    await expect(page.locator("#previa .previa")).to_contain_text("15/12/2026")
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "conversa.png"), full_page=True)

    await state.get_by_placeholder("O que foi combinado").fill("Aceitou 3x de R$ 500,00.")
    await page.get_by_role("button", name="Devolver ao bot").click()
    await expect(state).to_contain_text("Com o bot")
    await expect(page.locator(".linha")).to_contain_text(
        "Conversa devolvida ao bot. Aceitou 3x de R$ 500,00."
    )

    # The open conversation page follows live events too.
    await expect(page.locator("body")).to_have_attribute("data-live", "1")
    await escalate(service.url, email, seeded.conversation_id, "nova dúvida sobre o boleto")
    await expect(state).to_contain_text("Aguardando analista")
    await expect(page.locator(".linha")).to_contain_text("nova dúvida sobre o boleto")
    assert console_errors == []  # nothing refused by the CSP, no script error


async def test_xss_in_an_email_body_does_not_run(
    service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    _analyst_id, email = await seed_analyst()
    seeded = await seed_email_with_xss()
    dialogs: list[str] = []
    dismissing: set[asyncio.Task[None]] = set()

    def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        task = asyncio.ensure_future(dialog.dismiss())
        dismissing.add(task)
        task.add_done_callback(dismissing.discard)

    page.on("dialog", on_dialog)
    await log_in(page, service.url, email)
    await page.goto(f"{service.url}/painel/conversas/{seeded.conversation_id}")
    await expect(page.locator("body")).to_have_attribute("data-live", "1")  # our JS did run

    body = page.locator(".corpo-html")
    await expect(body).to_contain_text("Prezados,")
    await expect(body).to_contain_text("Departamento Jurídico")
    await expect(page.locator(".cabecalhos")).to_contain_text("advogado@escritorio.adv.br")
    await expect(page.locator(".cabecalhos")).to_contain_text(
        "Re: Notificação extrajudicial <script>alert(1)</script>"
    )
    text = await page.locator(".msg.email details .texto").text_content()
    assert text is not None and "<script>alert(1)</script>" in text  # shown as text
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "email.png"), full_page=True)

    await body.hover()
    await page.locator(".msg.email").first.click(position={"x": 5, "y": 5})
    scripts = await page.evaluate("Array.from(document.scripts).map(s => s.src)")
    assert scripts == [
        f"{service.url}/painel/static/htmx.min.js",
        f"{service.url}/painel/static/painel.js",
    ]
    assert await page.locator("main script").count() == 0
    assert await page.locator("[onerror], [onclick], [onmouseover]").count() == 0
    assert await page.locator("a[href^='javascript:']").count() == 0
    assert dialogs == []


async def test_an_escalation_in_one_process_reaches_a_browser_on_another(
    database_url: str, redis_url: str, chromium: str, page: Page
) -> None:
    from playwright.async_api import expect

    extra = {"REDIS_URL": redis_url}
    first, second = await asyncio.gather(
        start_service(database_url, extra), start_service(database_url, extra)
    )
    try:
        _analyst_id, email = await seed_analyst()
        seeded = await seed_whatsapp_conversation()
        await log_in(page, first.url, email)

        await escalate(second.url, email, seeded.conversation_id, "escalado pelo processo B")
        row = page.locator(f"#conversa-{seeded.conversation_id}")
        await expect(row).to_be_visible()
        await expect(row).to_contain_text("escalado pelo processo B")
    finally:
        await asyncio.gather(stop_service(first), stop_service(second))


async def test_reply_reaches_twilio_and_the_bot_answers_after_release(
    database_url: str, chromium: str, page: Page
) -> None:
    """The issue's whole scenario with the Twilio-compatible server and a real Rasa: the
    analyst's reply reaches the simulator; after release the bot answers the next message."""
    import uuid

    from playwright.async_api import expect

    from api.devtools.twilio_simulator import MESSAGE_WEBHOOK_PATH, build_inbound_form
    from tests.e2e.stack import ACCOUNT_SID, WHATSAPP_FROM, running_stack

    async with running_stack() as stack:
        sim, service_url = stack.sim.url, stack.service_url
        _analyst_id, email = await seed_analyst()
        seeded = await seed_whatsapp_conversation()
        to = f"whatsapp:{seeded.address}"
        client = stack.http
        # The seeded bot reply is still in the outbox: let the worker deliver it first.
        seeded_reply = (
            await client.get(f"{sim}/_sim/messages", params={"to": to, "after": 0, "wait": 30})
        ).json()["messages"]
        assert [m["body"][:6] for m in seeded_reply] == ["Claro!"]
        last = seeded_reply[-1]["seq"]
        await log_in(page, service_url, email)
        await escalate(service_url, email, seeded.conversation_id, "pedido de humano")
        row = page.locator(f"#conversa-{seeded.conversation_id}")
        await expect(row).to_be_visible()
        await row.get_by_role("link", name="Abrir").click()
        await page.get_by_role("button", name="Assumir conversa").click()
        await expect(page.locator("#estado")).to_contain_text("Com você")
        reply = "Olá, Maria, aqui é a analista. Podemos fechar em 3x."
        await page.locator("#texto").fill(reply)
        await page.get_by_role("button", name="Enviar mensagem").click()
        await expect(page.locator(".msg.saida", has_text=reply)).to_be_visible()

        # The reply reaches the Twilio-compatible server (the worker delivers the outbox).
        found = (
            await client.get(f"{sim}/_sim/messages", params={"to": to, "after": last, "wait": 30})
        ).json()["messages"]
        assert [m["body"] for m in found] == [reply]
        last = max(m["seq"] for m in found)

        await page.get_by_role("button", name="Devolver ao bot").click()
        await expect(page.locator("#estado")).to_contain_text("Com o bot")

        # The infringer writes again; the bot (real Rasa) answers, and the page shows it.
        form = build_inbound_form(
            account_sid=ACCOUNT_SID,
            to=WHATSAPP_FROM,
            sender=seeded.address,
            body="quanto é pra resolver?",
            message_sid=f"SM{uuid.uuid4().hex}",
        )
        posted = await stack.webhook(form)
        assert posted.status_code in (200, 204), posted.text
        assert MESSAGE_WEBHOOK_PATH == "/webhooks/twilio/whatsapp"
        answered = (
            await client.get(f"{sim}/_sim/messages", params={"to": to, "after": last, "wait": 30})
        ).json()["messages"]
        assert answered and "R$" in answered[0]["body"]
        # It answered this very message (read as asking the amount), not an older one, and
        # kept the conversation.
        async with unit_of_work() as session:
            asked = await session.scalar(
                sa.select(Message).where(
                    Message.conversation_id == seeded.conversation_id,
                    Message.text == "quanto é pra resolver?",
                )
            )
            conversation = await session.get(Conversation, seeded.conversation_id)
        assert asked is not None and asked.handled_at is not None
        assert asked.intent == "ask_amount"
        assert conversation is not None and conversation.holder is Holder.BOT
        await page.reload()
        bot_reply = page.locator(".msg.saida.autor-bot", has_text=answered[0]["body"][:40])
        await expect(bot_reply).to_be_visible()
        await expect(page.locator(".linha")).to_contain_text(re.compile("quanto é pra resolver"))
