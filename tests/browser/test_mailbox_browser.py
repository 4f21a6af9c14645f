"""The admins' mailbox page in real Chromium against the real service: reached from the menu,
a throttled mailbox shows its state, cursor and error, "Ler agora" asks for a read."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from api.analysts.models import Role
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.channels.mailboxes.service import create_mailbox, do_record_failure, do_save_cursor
from api.db import unit_of_work, utcnow
from tests.browser.conftest import PASSWORD, Service, seed_analyst

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("database_url")]


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(locale="pt-BR", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(10_000)
    opened = await context.new_page()
    yield opened
    await context.close()


async def test_an_admin_reads_a_mailboxs_state_and_asks_for_a_read(
    service: Service, page: Page
) -> None:
    from playwright.async_api import expect

    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        box = await create_mailbox(
            session,
            provider=MailboxProvider.GMAIL,
            name=f"atendimento-{t}",
            address=f"atendimento-{t}@firma.example",
            config={"client_id": "c"},
            credentials_env={"client_secret": "GMAIL_SECRET", "refresh_token": "GMAIL_REFRESH"},
        )
        box_id = box.id
        await do_save_cursor(session, mailbox_id=box_id, cursor="123456")
        await do_record_failure(
            session, mailbox_id=box_id, error="Throttled: Gmail 429", now=utcnow(), retry_after=60
        )
    _admin_id, email = await seed_analyst(Role.ADMIN)
    await page.goto(f"{service.url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page).to_have_url(f"{service.url}/painel/caixa")

    await page.get_by_role("link", name="Caixas postais").click()
    await expect(page).to_have_url(f"{service.url}/painel/caixas-postais")
    row = page.locator(f'tr[data-caixa="atendimento-{t}"]')
    await expect(row).to_contain_text("Gmail (API)")
    await expect(row).to_contain_text("Aguardando o provedor")
    await expect(row).to_contain_text("123456")
    await expect(row).to_contain_text("Gmail 429")
    await expect(row).not_to_contain_text("leitura pedida")

    await row.get_by_role("button", name="Ler agora").click()
    await expect(page).to_have_url(f"{service.url}/painel/caixas-postais")
    await expect(page.locator(f'tr[data-caixa="atendimento-{t}"]')).to_contain_text(
        "leitura pedida"
    )
    async with unit_of_work() as session:
        stored = await session.get(Mailbox, box_id)
        assert stored is not None and stored.sync_requested_at is not None
        stored.state = MailboxState.DISABLED  # no worker may try this fake mailbox later
