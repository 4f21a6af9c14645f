"""The rules screens in Chromium: a supervisor opens Regras from the menu, a rule with an
illegal status move is refused on the form with the reason, and the dry run on a case lists
what would fire."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.db import unit_of_work
from tests.browser.conftest import PASSWORD, Service, seed_analyst
from tests.factories import make_case, make_infringer

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


async def test_supervisor_is_refused_an_illegal_rule_and_simulates_a_case(
    service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        case = await make_case(
            session,
            infringer=await make_infringer(session, emails=(f"regras.{t}@exemplo.com.br",)),
            status=CaseStatus.NOTIFICADO,
        )
        reference = case.reference
    _id, email = await seed_analyst(Role.SUPERVISOR)

    await page.goto(f"{service.url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.get_by_role("link", name="Regras").click()
    await expect(page.get_by_role("heading", name="Regras de automação")).to_be_visible()
    await expect(page.locator("table.tabela-regras")).to_contain_text(
        "E-mail sem resposta há 3 dias úteis"
    )

    await page.get_by_role("link", name="Nova regra").click()
    await page.get_by_label("Nome").fill(f"Regra ilegal {t}")
    await page.get_by_label("Condições (JSON)").fill('{"statuses": ["NOTIFICADO"]}')
    await page.get_by_label("Ações (JSON)").fill('[{"type": "move_status", "to": "EM_NEGOCIACAO"}]')
    await page.get_by_role("button", name="Salvar regra").click()
    await expect(page.get_by_role("alert").filter(has_text="Transição")).to_contain_text(
        "Transição de status não permitida: Notificado → Em negociação"
    )
    # What was typed is still there to fix.
    await expect(page.get_by_label("Nome")).to_have_value(f"Regra ilegal {t}")
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "regras-recusada.png"), full_page=True)

    await page.goto(f"{service.url}/painel/regras/simular")
    await page.get_by_label("Referência do caso").fill(reference)
    await page.get_by_role("button", name="Simular").click()
    table = page.locator("table.simulacao")
    await expect(table).to_contain_text("Prazo da notificação vencido sem resposta")
    await expect(page.get_by_role("heading", name=f"Caso {reference}")).to_be_visible()
