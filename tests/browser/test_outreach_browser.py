"""The send screen in Chromium: simulate a brand's notices, confirm, and watch the batch page
update itself (HTMX polling under the panel's CSP) when the notices go out."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from api.cases.lifecycle import CaseStatus
from api.db import unit_of_work
from api.outreach.service import run_due_outreach
from api.outreach.views import get_batch_progress
from tests.browser.conftest import PASSWORD, Service, seed_analyst
from tests.factories import make_brand, make_case, make_infringer

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


async def test_simulate_confirm_and_watch_the_batch_finish(
    service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        brand = await make_brand(session, name=f"Marca Disparo {t}")
        ready = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, emails=(f"loja.{t}@exemplo.com.br",)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        unreachable = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, phones=(f"+55419{int(t, 16) % 10**8:08d}",)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        brand_name, ready_ref, unreachable_ref = brand.name, ready.reference, unreachable.reference
    _analyst_id, email = await seed_analyst()

    await page.goto(f"{service.url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await page.get_by_role("link", name="Disparos").click()
    await expect(page).to_have_url(f"{service.url}/painel/disparos")

    await page.get_by_label("Marca").select_option(label=f"{brand_name} (2 aptos a notificar)")
    await page.locator("form.disparo-form").get_by_role("button", name="Simular").click()
    await expect(page.get_by_role("heading", name="Simulação do disparo")).to_be_visible()
    await expect(page.locator("#previa-disparo")).to_contain_text(ready_ref)
    await expect(page.locator("#previa-disparo")).to_contain_text("Nenhum endereço de E-mail")
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "disparo-simulacao.png"), full_page=True)

    await page.get_by_role("button", name="Confirmar envio").click()
    await expect(page.get_by_role("heading", name="Progresso: Em andamento")).to_be_visible()
    batch_id = int(page.url.rsplit("/", 1)[1])
    await expect(page.get_by_role("button", name="Cancelar o restante")).to_be_visible()
    await expect(page.locator(f'tr[data-caso="{ready_ref}"]')).to_have_attribute(
        "data-situacao", "pending"
    )

    # The worker's pass (here, in the test process, at the batch's first business moment).
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
    assert progress is not None and progress.next_at is not None
    await run_due_outreach(now=progress.next_at, batch_id=batch_id)

    # No reload: the page's own polling brings the result.
    await expect(page.get_by_role("heading", name="Progresso: Concluído")).to_be_visible()
    await expect(page.locator(f'tr[data-caso="{ready_ref}"]')).to_have_attribute(
        "data-situacao", "sent"
    )
    await expect(page.locator(f'tr[data-caso="{unreachable_ref}"]')).to_have_attribute(
        "data-situacao", "skipped"
    )
    await expect(page.locator(".percentual")).to_have_text("100%")
    await expect(page.get_by_role("button", name="Cancelar o restante")).to_have_count(0)
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "disparo-concluido.png"), full_page=True)
        await page.goto(f"{service.url}/painel/disparos")
        await page.screenshot(path=str(screenshot_dir / "disparos.png"), full_page=True)
