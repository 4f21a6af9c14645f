"""The WhatsApp numbers screen in Chromium: an admin reaches it from the menu, adds an
unofficial (Z-API) number through the form, and reads the risk-of-ban warning beside it."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from api.analysts.models import Role
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


async def test_an_admin_adds_an_unofficial_number_and_sees_the_warning(
    service: Service, page: Page
) -> None:
    from playwright.async_api import expect

    _, email = await seed_analyst(Role.ADMIN)
    number = f"+551131{random.randint(100_000, 999_999)}"
    await page.goto(f"{service.url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.get_by_role("link", name="Números").click()
    await expect(page.get_by_role("heading", name="Números de WhatsApp")).to_be_visible()

    form = page.locator("form.form-numero")
    await form.get_by_label("Provedor", exact=True).select_option("zapi")
    await form.get_by_label("Número (E.164)").fill(number)
    await form.get_by_label("Conta no provedor").fill("INSTANCE-BROWSER")
    await form.get_by_label("Variável do token").fill("ZAPI_TOKEN_BROWSER")
    await form.get_by_role("button", name="Cadastrar").click()

    row = page.locator("tr", has_text=number)
    await expect(row).to_contain_text("Z-API (não oficial)")
    await expect(row).to_contain_text("ZAPI_TOKEN_BROWSER")
    warning = page.locator('[data-aviso="nao-oficial"]')
    await expect(warning).to_be_visible()
    await expect(warning).to_contain_text("banido")
    await expect(warning).to_contain_text("não há aprovação de modelos")
