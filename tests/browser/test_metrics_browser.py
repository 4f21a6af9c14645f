"""The supervisors' dashboard in real Chromium: the charts render (SVG bars with a width), the
numbers behind a chart open with one click and equal what the API answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from api.analysts.models import Role
from api.db import get_sessionmaker, unit_of_work
from api.events.consumers import drain
from api.metrics.consumer import METRICS_ROLLUPS
from tests.browser.conftest import PASSWORD, Service, api_token, seed_analyst
from tests.helpers.metrics_fixture import Fixture, seed_metrics_fixture

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


async def seeded() -> Fixture:
    async with unit_of_work() as session:
        fx = await seed_metrics_fixture(session, tag=f" {uuid.uuid4().hex[:6]}")
    await drain(METRICS_ROLLUPS, maker=get_sessionmaker())
    return fx


async def test_dashboard_charts_render_and_match_the_api(
    service: Service, page: Page, screenshot_dir: Path | None
) -> None:
    from playwright.async_api import expect

    fx = await seeded()
    _, email = await seed_analyst(Role.SUPERVISOR)
    await page.goto(f"{service.url}/painel/login")
    await page.get_by_label("E-mail").fill(email)
    await page.get_by_label("Senha").fill(PASSWORD)
    await page.get_by_role("button", name="Entrar").click()
    await expect(page).to_have_url(f"{service.url}/painel/caixa")
    await page.get_by_role("link", name="Métricas").click()
    await expect(page.get_by_role("heading", name="Métricas", exact=True)).to_be_visible()
    # Filter like a supervisor would: October, brand Beta.
    await page.locator("input[name='periodo']").fill("2026-10")
    await page.locator("select[name='marca']").select_option(str(fx.brand_b))
    await page.get_by_role("button", name="Filtrar").click()
    await expect(page).to_have_url(
        f"{service.url}/painel/metricas?periodo=2026-10&marca={fx.brand_b}&canal=&analista="
    )

    funnel = page.locator("figure[data-grafico='funil']")
    await expect(funnel.locator("svg rect")).to_have_count(6)
    for chart in ("funil", "conversao", "tempos-canal", "tempos-analista", "semanas"):
        bars = page.locator(f"figure[data-grafico='{chart}'] svg rect")
        assert await bars.count() > 0, chart
        box = await bars.first.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0, chart
    # The numbers are one click away, and they are the API's.
    value = funnel.locator("[data-grafico-valor='funil:Acordo']")
    await expect(value).to_be_hidden()
    await funnel.get_by_text("Ver números").click()
    await expect(value).to_be_visible()
    shown = int(await value.inner_text())
    headers = await api_token(service.url, email)
    async with httpx.AsyncClient(base_url=service.url, headers=headers, timeout=10) as client:
        response = await client.get(
            "/api/v1/metrics/brands", params={"period": "2026-10", "brand_id": fx.brand_b}
        )
    assert response.status_code == 200
    assert shown == sum(row["agreement"] for row in response.json()) == 3
    # The analysts table names Bruno with his two claims (C4, C10).
    bruno = page.locator(f"tr[data-analista='{fx.bruno}'] td")
    await expect(bruno.nth(1)).to_have_text("2")
    if screenshot_dir is not None:
        await page.screenshot(path=str(screenshot_dir / "metricas.png"), full_page=True)
