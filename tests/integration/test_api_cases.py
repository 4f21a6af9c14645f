from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.web.deps import get_session
from tests.factories import make_analyst, make_brand, make_case

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session
        await session.flush()

    app.dependency_overrides[get_session] = _session
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def _login(client: httpx.AsyncClient, session: AsyncSession) -> dict[str, str]:
    analyst = await make_analyst(session, role=Role.ANALYST)
    response = await client.post(
        "/api/v1/auth/token", data={"username": analyst.email, "password": "correct-horse"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_health_and_ready(database_url: str) -> None:
    # Its own client: /ready opens its own connection, outside the test's rolled-back session.
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.get("/health")).json() == {"status": "ok"}
        ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == "ok"


async def test_cases_need_a_valid_token(client: httpx.AsyncClient, session: AsyncSession) -> None:
    assert (await client.get("/api/v1/cases")).status_code == 401
    bad = await client.get("/api/v1/cases", headers={"Authorization": "Bearer forged"})
    assert bad.status_code == 401
    analyst = await make_analyst(session)
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": analyst.email, "password": "wrong-password"}
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "authentication_required"


async def test_list_filters_and_paginates(client: httpx.AsyncClient, session: AsyncSession) -> None:
    headers = await _login(client, session)
    brand = await make_brand(session)
    other = await make_brand(session)
    notified = [
        await make_case(session, brand=brand, status=CaseStatus.NOTIFICADO) for _ in range(3)
    ]
    await make_case(session, brand=brand, status=CaseStatus.DETECTADO)
    await make_case(session, brand=other, status=CaseStatus.NOTIFICADO)

    page1 = await client.get(
        "/api/v1/cases",
        params={"brand_id": brand.id, "status": "NOTIFICADO", "page_size": 2},
        headers=headers,
    )
    body = page1.json()
    assert page1.status_code == 200
    assert body["total"] == 3 and len(body["items"]) == 2
    page2 = await client.get(
        "/api/v1/cases",
        params={"brand_id": brand.id, "status": "NOTIFICADO", "page_size": 2, "page": 2},
        headers=headers,
    )
    refs = {i["reference"] for i in body["items"]} | {i["reference"] for i in page2.json()["items"]}
    assert refs == {c.reference for c in notified}

    search = await client.get(
        "/api/v1/cases", params={"q": notified[0].reference.lower()}, headers=headers
    )
    assert [i["id"] for i in search.json()["items"]] == [notified[0].id]

    invalid = await client.get("/api/v1/cases", params={"status": "NOPE"}, headers=headers)
    assert invalid.status_code == 422


async def test_detail_and_timeline(client: httpx.AsyncClient, session: AsyncSession) -> None:
    headers = await _login(client, session)
    case = await make_case(session, status=CaseStatus.NOTIFICADO)
    detail = await client.get(f"/api/v1/cases/{case.id}", headers=headers)
    assert detail.status_code == 200
    assert detail.json()["allowed_moves"] == ["EM_ATENDIMENTO", "SEM_RESPOSTA"]
    assert detail.json()["listings"][0]["marketplace"] == "Mercado Livre"
    by_ref = await client.get(f"/api/v1/cases/by-reference/{case.reference}", headers=headers)
    assert by_ref.json()["id"] == case.id
    timeline = await client.get(f"/api/v1/cases/{case.id}/timeline", headers=headers)
    entries = timeline.json()
    assert entries[0]["summary"] == f"Caso {case.reference} aberto."
    assert [e["data"]["to"] for e in entries[1:]] == [
        "EM_TRIAGEM",
        "APTO_NOTIFICAR",
        "NOTIFICADO",
    ]
    missing = await client.get("/api/v1/cases/999999", headers=headers)
    assert missing.status_code == 404
