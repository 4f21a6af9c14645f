"""The metrics API: JSON and CSV from the same query, supervisors only, bad filters are 422;
and the rollups follow events written by the real services (handoff, claim, analyst reply)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel
from api.conversations.service import create_conversation
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.events.consumers import drain
from api.handoff.service import do_claim, do_request_handoff, do_send_analyst_message
from api.metrics.consumer import METRICS_ROLLUPS
from api.metrics.service import get_metrics
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer
from tests.helpers.metrics_fixture import Fixture, seed_metrics_fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def token_for(client: httpx.AsyncClient, role: Role) -> dict[str, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        email = analyst.email
    response = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture(scope="module")
async def seeded(database_url: str) -> Fixture:
    async with unit_of_work() as session:
        fx = await seed_metrics_fixture(session, tag=f" {uuid.uuid4().hex[:6]}")
    await drain(METRICS_ROLLUPS, maker=get_sessionmaker())
    return fx


async def test_json_matches_the_read_model_and_the_hand_figures(
    client: httpx.AsyncClient, seeded: Fixture
) -> None:
    headers = await token_for(client, Role.SUPERVISOR)
    params = {"period": "2026-10", "brand_id": str(seeded.brand_b)}
    response = await client.get("/api/v1/metrics", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    (brand,) = body["brands"]
    assert (brand["cases"], brand["engaged"], brand["agreement"], brand["paid"]) == (5, 5, 3, 1)
    assert brand["agreed_amount"] == "2700.00"
    async with unit_of_work() as session:
        direct = await get_metrics(session, period="2026-10", brand_id=seeded.brand_b)
    assert body == direct.model_dump(mode="json")
    channels = await client.get("/api/v1/metrics/channels", params=params, headers=headers)
    assert channels.json() == body["channels"]


async def test_csv_uses_the_same_query(client: httpx.AsyncClient, seeded: Fixture) -> None:
    headers = await token_for(client, Role.SUPERVISOR)
    params = {"period": "2026-10", "brand_id": str(seeded.brand_a)}
    response = await client.get("/api/v1/metrics/channels.csv", params=params, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = {r["channel"]: r for r in csv.DictReader(io.StringIO(response.text))}
    json_rows = {
        r["channel"]: r
        for r in (
            await client.get("/api/v1/metrics/channels", params=params, headers=headers)
        ).json()
    }
    assert set(rows) == set(json_rows) == {"whatsapp", "email"}
    for name in rows:
        assert int(rows[name]["messages_sent"]) == json_rows[name]["messages_sent"]
        assert float(rows[name]["human_first_response.wall.median"] or 0) == pytest.approx(
            json_rows[name]["human_first_response"]["wall"]["median"] or 0, rel=1e-3
        )
    # Brand A on WhatsApp: C1, C2, C6, C8 → 4 conversations; C2's human first response.
    assert rows["whatsapp"]["conversations"] == "4"
    assert float(rows["whatsapp"]["human_first_response.wall.median"]) == 232140


async def test_supervisors_only_and_bad_filters(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/metrics")).status_code == 401
    analyst = await token_for(client, Role.ANALYST)
    assert (await client.get("/api/v1/metrics", headers=analyst)).status_code == 403
    supervisor = await token_for(client, Role.SUPERVISOR)
    for params in (
        {"period": "2026-13"},
        {"period": "novembro"},
        {"period": "0000-00"},
        {"date_from": "2026-02-30"},
        {"channel": "fax"},
        {"brand_id": "0"},
    ):
        response = await client.get("/api/v1/metrics", params=params, headers=supervisor)
        assert response.status_code == 422, params
        assert response.json()["error"]["code"]
    unknown = await client.get("/api/v1/metrics/nothing.csv", headers=supervisor)
    assert unknown.status_code == 422
    definitions = await client.get("/api/v1/metrics/definitions", headers=supervisor)
    assert {d["key"] for d in definitions.json()} >= {"human_first_response", "attribution"}
    schema = (await client.get("/openapi.json")).json()
    assert "/api/v1/metrics/channels" in schema["paths"]


async def test_rollups_follow_the_real_services(seeded: Fixture) -> None:
    phone = f"+55319{uuid.uuid4().int % 10**8:08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        brand_id = case.brand_id
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        conversation.provider = "meta"  # opened on a Cloud API number
        conversation_id = conversation.id
        analyst = await make_analyst(session)
        analyst_id = analyst.id
    async with unit_of_work() as session:
        await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text="quero falar com uma pessoa",
                received_at=utcnow(),
                raw={},
            ),
        )
    async with unit_of_work() as session:
        conversation = await session.get(type(conversation), conversation_id)
        assert conversation is not None
        await do_request_handoff(
            session, conversation=conversation, reason="pedido do infrator", actor=Actor.bot()
        )
    async with unit_of_work() as session:
        analyst = await session.get(type(analyst), analyst_id)
        assert analyst is not None
        await do_claim(session, conversation_id=conversation_id, analyst=analyst)
        await do_send_analyst_message(
            session, conversation_id=conversation_id, analyst=analyst, text="Olá, sou a analista."
        )
    await drain(METRICS_ROLLUPS, maker=get_sessionmaker())
    async with unit_of_work() as session:
        report = await get_metrics(session, brand_id=brand_id)
    (row,) = [r for r in report.analysts if r.analyst_id == analyst_id]
    assert (row.handoffs_taken, row.messages_sent) == (1, 1)
    assert row.first_response.wall.n == 1 and row.queue_wait.wall.n == 1
    assert 0 <= row.first_response.wall.median < 60  # seconds, all in this test
    (wa,) = report.channels
    assert (wa.handoff_events, wa.conversations_handed_off, wa.messages_received) == (1, 1, 1)
    assert (wa.conversations_answered, wa.human_first_response.wall.n) == (1, 1)
    (meta,) = report.providers
    assert (meta.channel, meta.provider, meta.conversations, meta.messages_sent) == (
        "whatsapp",
        "meta",
        1,
        1,
    )
    reasons = [(r.reason, r.events) for r in report.handoff_reasons]
    assert reasons == [("pedido do infrator", 1)]


async def panel_login(client: httpx.AsyncClient, role: Role) -> None:
    import re

    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        email = analyst.email
    page = await client.get("/painel/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    response = await client.post(
        "/painel/login",
        data={"email": email, "senha": "correct-horse", "csrf_token": csrf.group(1)},
    )
    assert response.status_code == 303


async def test_dashboard_page_and_its_csv(client: httpx.AsyncClient, seeded: Fixture) -> None:
    await panel_login(client, Role.SUPERVISOR)
    query = {"periodo": "2026-10", "marca": str(seeded.brand_b)}
    page = await client.get("/painel/metricas", params=query)
    assert page.status_code == 200, page.text
    html = page.text
    for chart in ("funil", "conversao", "tempos-canal", "tempos-analista", "semanas"):
        assert f'data-grafico="{chart}"' in html
    assert 'data-grafico-valor="funil:Acordo">3<' in html  # C5, C10, C12
    assert "<script" not in html.split("</head>")[1]  # charts are SVG, no script
    csv_page = await client.get("/painel/metricas/brands.csv", params=query)
    assert csv_page.status_code == 200
    (row,) = list(csv.DictReader(io.StringIO(csv_page.text)))
    assert (row["cases"], row["agreement"], row["agreed_amount"]) == ("5", "3", "2700.00")
    bad = await client.get("/painel/metricas", params={"periodo": "2026-13"})
    assert bad.status_code == 422


async def test_dashboard_is_for_supervisors(client: httpx.AsyncClient) -> None:
    await panel_login(client, Role.ANALYST)
    assert (await client.get("/painel/metricas")).status_code == 403
    inbox = await client.get("/painel/caixa")
    assert 'href="/painel/metricas"' not in inbox.text
