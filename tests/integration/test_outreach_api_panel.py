"""The outreach API (`/api/v1/outreach`) and panel (`/painel/disparos`) over HTTP (ASGI client,
real database): dry run, a batch with its Idempotency-Key, progress and the per-case report,
the send form, the live progress fragment, and the case page's "notificar"."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.db import unit_of_work
from api.outreach.service import run_due_outreach
from api.outreach.views import get_batch_progress
from tests.factories import make_analyst, make_brand, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def brand_cases() -> tuple[int, str, list[tuple[int, str]]]:
    """A brand with two cases ready to notify (one reachable by e-mail, one not)."""
    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        brand = await make_brand(session, name=f"Marca Painel {t}")
        cases = [
            await make_case(
                session,
                brand=brand,
                infringer=await make_infringer(session, emails=(f"contato.{t}@empresa.com.br",)),
                status=CaseStatus.APTO_NOTIFICAR,
            ),
            await make_case(
                session,
                brand=brand,
                infringer=await make_infringer(
                    session, phones=(f"+55319{int(t, 16) % 10**8:08d}",)
                ),
                status=CaseStatus.APTO_NOTIFICAR,
            ),
        ]
        return brand.id, brand.name, [(c.id, c.reference) for c in cases]


async def send_when_open(batch_id: int) -> None:
    """Run the batch at its first business moment (no waiting for the real clock)."""
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
    assert progress is not None and progress.next_at is not None
    await run_due_outreach(now=progress.next_at, batch_id=batch_id)


async def api_login(client: httpx.AsyncClient) -> dict[str, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=Role.ANALYST)
        email = analyst.email
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


async def test_the_api_answers_a_dry_run_queues_once_per_key_and_reports_per_case(
    client: httpx.AsyncClient,
) -> None:
    brand_id, _name, cases = await brand_cases()
    (reachable, reachable_ref), (unreachable, _) = cases
    assert (await client.post("/api/v1/outreach/notices", json={})).status_code == 401
    headers = await api_login(client)

    dry = await client.post(
        "/api/v1/outreach/notices",
        json={"brand_id": brand_id, "status": "APTO_NOTIFICAR", "dry_run": True},
        headers=headers,
    )
    assert dry.status_code == 200, dry.text
    assert [(p["case_id"], p["would_send"], p["reason"]) for p in dry.json()] == [
        (reachable, True, None),
        (unreachable, False, "no_address"),
    ]
    nothing = await client.post("/api/v1/outreach/notices", json={}, headers=headers)
    assert nothing.status_code == 422
    # Filters combine: these ids, of this brand, in triage: none.
    none_left = await client.post(
        "/api/v1/outreach/notices",
        json={"case_ids": [reachable], "brand_id": brand_id, "status": "EM_TRIAGEM"},
        headers=headers,
    )
    assert none_left.status_code == 409
    unknown = await client.post(
        "/api/v1/outreach/notices", json={"case_ids": [reachable, 999_999_999]}, headers=headers
    )
    assert unknown.status_code == 404 and "999999999" in unknown.text
    bad_phone = await client.post(
        "/api/v1/outreach/opt-ins", json={"phone": "12345", "source": "site"}, headers=headers
    )
    assert bad_phone.status_code == 422

    body = {"case_ids": [reachable, unreachable], "channel": "email"}
    key = {"Idempotency-Key": f"lote-{uuid.uuid4().hex}"}
    first = await client.post("/api/v1/outreach/notices", json=body, headers={**headers, **key})
    assert first.status_code == 202, first.text
    again = await client.post("/api/v1/outreach/notices", json=body, headers={**headers, **key})
    assert again.json()["id"] == first.json()["id"]
    batch_id = first.json()["id"]
    assert (first.json()["total"], first.json()["pending"]) == (2, 2)

    await send_when_open(batch_id)
    report = await client.get(f"/api/v1/outreach/batches/{batch_id}", headers=headers)
    assert report.status_code == 200
    data = report.json()
    assert (data["state"], data["sent"], data["skipped"], data["percent"]) == ("done", 1, 1, 100)
    items = {i["case_reference"]: i for i in data["items"]}
    assert items[reachable_ref]["state"] == "sent"
    assert items[reachable_ref]["address"].endswith("@empresa.com.br")
    assert [i["reason"] for i in data["items"] if i["state"] == "skipped"] == ["no_address"]
    case = await client.get(f"/api/v1/cases/{reachable}", headers=headers)
    assert case.json()["status"] == "NOTIFICADO"
    listed = await client.get("/api/v1/outreach/batches", headers=headers)
    assert batch_id in [b["id"] for b in listed.json()]


async def panel_login(client: httpx.AsyncClient) -> str:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=Role.ANALYST)
        email = analyst.email
    page = await client.get("/painel/login")
    found = _CSRF_RE.search(page.text)
    assert found is not None
    response = await client.post(
        "/painel/login",
        data={"email": email, "senha": "correct-horse", "csrf_token": found.group(1)},
    )
    assert response.status_code == 303, response.text
    home = await client.get("/painel/disparos")
    assert home.status_code == 200
    found = _CSRF_RE.search(home.text)
    assert found is not None
    return found.group(1)


async def test_the_panel_simulates_sends_and_shows_live_progress_and_the_report(
    client: httpx.AsyncClient,
) -> None:
    brand_id, brand_name, cases = await brand_cases()
    (reachable, reachable_ref), (_unreachable, unreachable_ref) = cases
    csrf = await panel_login(client)
    home = await client.get("/painel/disparos")
    assert f"{brand_name} (2 aptos a notificar)" in home.text
    assert 'href="/painel/disparos"' in home.text  # in the navigation

    form = {
        "csrf_token": csrf,
        "marca": str(brand_id),
        "status": "APTO_NOTIFICAR",
        "canal": "email",
    }
    preview = await client.post("/painel/disparos", data={**form, "simular": "1"})
    assert preview.status_code == 200
    assert "1 caso receberia a notificação; 1 seria pulado" in preview.text
    assert "Nenhum endereço de E-mail cadastrado" in preview.text
    without_csrf = await client.post("/painel/disparos", data={**form, "csrf_token": "x"})
    assert without_csrf.status_code in (400, 403)

    started = await client.post("/painel/disparos", data=form, follow_redirects=False)
    assert started.status_code == 303
    location = started.headers["location"]
    batch_id = int(location.rsplit("/", 1)[1])
    page = await client.get(location)
    assert 'hx-trigger="every 2s"' in page.text  # polls while it runs
    assert page.text.count('data-situacao="pending"') == 2

    await send_when_open(batch_id)
    fragment = await client.get(f"{location}/progresso")
    assert fragment.status_code == 200
    assert "hx-trigger" not in fragment.text  # finished: no more polling
    assert f'data-caso="{reachable_ref}" data-situacao="sent"' in fragment.text
    assert f'data-caso="{unreachable_ref}" data-situacao="skipped"' in fragment.text
    assert "100%" in fragment.text

    # From a case page: the same service, one case.
    async with unit_of_work() as session:
        other = await make_case(
            session,
            infringer=await make_infringer(session, emails=(f"x.{uuid.uuid4().hex[:8]}@a.com.br",)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        other_id, other_ref = other.id, other.reference
    phone = f"+55479{uuid.uuid4().int % 10**8:08d}"
    async with unit_of_work() as session:
        await make_infringer(session, phones=(phone,))
    opted = await client.post(
        "/painel/disparos/opt-in",
        data={"csrf_token": csrf, "telefone": phone, "origem": "ligação gravada"},
        follow_redirects=True,
    )
    assert opted.status_code == 200 and "Opt-in registrado." in opted.text
    unknown_phone = await client.post(
        "/painel/disparos/opt-in",
        data={"csrf_token": csrf, "telefone": "+5547999990000", "origem": "x"},
    )
    assert unknown_phone.status_code == 404

    case_page = await client.get(f"/painel/casos/{other_id}")
    assert f'action="/painel/casos/{other_id}/notificar"' in case_page.text
    one = await client.post(
        f"/painel/casos/{other_id}/notificar",
        data={"csrf_token": csrf, "canal": "email"},
        follow_redirects=False,
    )
    assert one.status_code == 303 and "/painel/disparos/" in one.headers["location"]
    single = await client.get(one.headers["location"])
    assert f'data-caso="{other_ref}" data-situacao="pending"' in single.text
    assert reachable != other_id
