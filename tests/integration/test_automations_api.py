"""The automations API (/api/v1/automations) and panel pages (/painel/regras): supervisors
manage, analysts read; validation answers 422 with the reason; the dry run says which rules
would fire for a case and what they would send."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.automations.models import AutomationRule
from api.cases.lifecycle import CaseStatus
from api.db import unit_of_work
from tests.integration.test_automations_defaults import at, email_case, sent_email
from tests.integration.test_handoff_api import login
from tests.integration.test_panel import csrf_of, panel_app
from tests.integration.test_panel import login as panel_login

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
BASE = "/api/v1/automations"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def harmless_rule(**changes: Any) -> dict[str, Any]:
    """A rule that can never act on another test's data (a brand id no case has)."""
    return {
        "name": f"Teste {uuid.uuid4().hex[:8]}",
        "trigger": {"type": "event", "event": "note.added"},
        "conditions": {"brand_ids": [999_999_999]},
        "actions": [{"type": "add_note", "text": "visto"}],
        "enabled": False,
    } | changes


async def test_supervisors_manage_rules_and_analysts_read_them(
    client: httpx.AsyncClient,
) -> None:
    supervisor, _, _ = await login(client, Role.SUPERVISOR)
    analyst, _, _ = await login(client, Role.ANALYST)

    listed = await client.get(f"{BASE}/rules", headers=analyst)
    assert listed.status_code == 200
    defaults = {r["builtin_key"] for r in listed.json() if r["builtin_key"]}
    assert {
        "email_sem_resposta",
        "prazo_sem_resposta",
        "parcela_vencida",
        "acordo_aceito",
        "pagamento_confirmado",
    } <= defaults

    body = harmless_rule()
    assert (await client.post(f"{BASE}/rules", json=body, headers=analyst)).status_code == 403
    created = await client.post(f"{BASE}/rules", json=body, headers=supervisor)
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["version"] == 1 and rule["summary"].startswith("quando ocorrer note.added")

    edited = await client.put(
        f"{BASE}/rules/{rule['id']}",
        json=body | {"description": "agora com descrição"},
        headers=supervisor,
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    toggled = await client.put(
        f"{BASE}/rules/{rule['id']}/enabled", json={"enabled": False}, headers=supervisor
    )
    assert toggled.status_code == 200 and toggled.json()["enabled"] is False
    assert (
        await client.put(
            f"{BASE}/rules/{rule['id']}/enabled", json={"enabled": True}, headers=analyst
        )
    ).status_code == 403
    assert (
        await client.delete(f"{BASE}/rules/{rule['id']}", headers=supervisor)
    ).status_code == 204
    assert (await client.get(f"{BASE}/rules/{rule['id']}", headers=analyst)).status_code == 404


async def test_invalid_rules_are_refused_with_422_and_nothing_is_stored(
    client: httpx.AsyncClient,
) -> None:
    supervisor, _, _ = await login(client, Role.SUPERVISOR)
    unknown_template = harmless_rule(
        actions=[{"type": "send_template", "template": "modelo_fantasma"}]
    )
    response = await client.post(f"{BASE}/rules", json=unknown_template, headers=supervisor)
    assert response.status_code == 422
    assert "modelo_fantasma" in response.text
    illegal = harmless_rule(
        conditions={"statuses": ["DETECTADO"]},
        actions=[{"type": "move_status", "to": "SEM_RESPOSTA"}],
    )
    response = await client.post(f"{BASE}/rules", json=illegal, headers=supervisor)
    assert response.status_code == 422
    assert "Transição de status não permitida: Detectado → Sem resposta" in response.text
    unknown_action = harmless_rule(actions=[{"type": "apagar_tudo"}])
    assert (
        await client.post(f"{BASE}/rules", json=unknown_action, headers=supervisor)
    ).status_code == 422
    async with unit_of_work() as session:
        names = {
            unknown_template["name"],
            illegal["name"],
            unknown_action["name"],
        }
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AutomationRule)
            .where(AutomationRule.name.in_(names))
        )
    assert stored == 0


async def test_dry_run_says_what_would_fire_and_what_it_would_send(
    client: httpx.AsyncClient,
) -> None:
    analyst, _, _ = await login(client, Role.ANALYST)
    async with unit_of_work() as session:
        case, conversation = await email_case(session)
        await sent_email(session, conversation, at(2026, 12, 22, 10, 0), "Segue a notificação.")
        case_id, reference = case.id, case.reference
    response = await client.get(
        f"{BASE}/cases/{case_id}/dry-run",
        params={"at": "2026-12-28T10:00:00-03:00"},
        headers=analyst,
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["case_reference"] == reference
    by_name = {r["rule_name"]: r for r in result["rules"]}
    reminder = by_name["E-mail sem resposta há 3 dias úteis"]
    assert reminder["would_fire"] is True
    assert "ainda não recebemos sua resposta" in reminder["actions"][0]["note"]
    deadline = by_name["Prazo da notificação vencido sem resposta"]
    assert deadline["would_fire"] is False
    # The day before, nothing is due yet; and the dry run changed nothing.
    earlier = await client.get(
        f"{BASE}/cases/{case_id}/dry-run",
        params={"at": "2026-12-24T10:00:00-03:00"},
        headers=analyst,
    )
    assert {r["rule_name"]: r for r in earlier.json()["rules"]}[
        "E-mail sem resposta há 3 dias úteis"
    ]["would_fire"] is False
    executions = await client.get(
        f"{BASE}/executions", params={"case_id": case_id}, headers=analyst
    )
    assert executions.json() == []
    naive = await client.get(
        f"{BASE}/cases/{case_id}/dry-run", params={"at": "2026-12-28T10:00:00"}, headers=analyst
    )
    assert naive.status_code == 422


async def test_panel_lists_rules_disables_one_and_simulates_a_case(
    client: httpx.AsyncClient,
) -> None:
    supervisor_headers, _, _ = await login(client, Role.SUPERVISOR)
    created = await client.post(
        f"{BASE}/rules", json=harmless_rule(enabled=True), headers=supervisor_headers
    )
    rule_id = created.json()["id"]
    client.headers.pop("Authorization", None)
    me = await panel_login(client, Role.SUPERVISOR)
    page = await client.get("/painel/regras")
    assert page.status_code == 200
    assert "E-mail sem resposta há 3 dias úteis" in page.text
    assert f'data-regra="{rule_id}"' in page.text
    off = await client.post(
        f"/painel/regras/{rule_id}/ativa", data={"csrf_token": me.csrf, "ativa": "0"}
    )
    assert off.status_code == 303
    async with unit_of_work() as session:
        rule = await session.get(AutomationRule, rule_id)
        assert rule is not None and rule.enabled is False

    # A new rule through the form.
    new_form = await client.get("/painel/regras/nova")
    assert new_form.status_code == 200
    name = f"Pelo painel {rule_id}"
    made = await client.post(
        "/painel/regras/nova",
        data={
            "csrf_token": csrf_of(new_form.text),
            "nome": name,
            "gatilho": '{"type": "event", "event": "note.added"}',
            "condicoes": '{"brand_ids": [999999999]}',
            "acoes": '[{"type": "add_note", "text": "ok"}]',
        },
    )
    assert made.status_code == 303
    made_id = int(made.headers["location"].rsplit("/", 1)[1])
    async with unit_of_work() as session:
        stored = await session.get(AutomationRule, made_id)
        assert stored is not None and stored.name == name and stored.enabled is False
    await client.delete(f"{BASE}/rules/{made_id}", headers=supervisor_headers)

    # An edit with an illegal move is refused on the form, with the reason, and not stored.
    form = await client.get(f"/painel/regras/{rule_id}")
    refused = await client.post(
        f"/painel/regras/{rule_id}",
        data={
            "csrf_token": csrf_of(form.text),
            "nome": created.json()["name"],
            "gatilho": '{"type": "event", "event": "note.added"}',
            "condicoes": '{"statuses": ["DETECTADO"]}',
            "acoes": '[{"type": "move_status", "to": "PAGO"}]',
        },
    )
    assert refused.status_code == 422
    assert "não pode mover o caso para Pago" in refused.text
    async with unit_of_work() as session:
        rule = await session.get(AutomationRule, rule_id)
        assert rule is not None and rule.version == 1

    async with unit_of_work() as session:
        case, _conversation = await email_case(session, status=CaseStatus.NOTIFICADO)
        reference = case.reference
    simulated = await client.get("/painel/regras/simular", params={"caso": reference})
    assert simulated.status_code == 200
    assert reference in simulated.text and "Prazo da notificação vencido" in simulated.text
    missing = await client.get("/painel/regras/simular", params={"caso": "INF-1999-000001"})
    assert "não encontrado" in missing.text
    await client.delete(f"{BASE}/rules/{rule_id}", headers=supervisor_headers)


async def test_analysts_see_rules_in_the_panel_but_cannot_change_them(
    client: httpx.AsyncClient,
) -> None:
    me = await panel_login(client, Role.ANALYST)
    page = await client.get("/painel/regras")
    assert page.status_code == 200 and "Nova regra" not in page.text
    async with unit_of_work() as session:
        rule_id = await session.scalar(
            sa.select(AutomationRule.id).where(AutomationRule.builtin_key == "acordo_aceito")
        )
    response = await client.post(
        f"/painel/regras/{rule_id}/ativa", data={"csrf_token": me.csrf, "ativa": "0"}
    )
    assert response.status_code == 403
    async with unit_of_work() as session:
        rule = await session.get(AutomationRule, rule_id)
        assert rule is not None and rule.enabled is True
