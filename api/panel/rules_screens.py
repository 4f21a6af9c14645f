"""Panel: automation rules — list, detail and edit (supervisors), enable/disable, and a dry
run on a case ("which rules would fire now, and what would they do")."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst, Role
from api.automations.dryrun import get_dry_run
from api.automations.engine import limits
from api.automations.schemas import ANCHOR_LABELS
from api.automations.service import (
    RuleInvalid,
    create_rule,
    do_set_enabled,
    do_update_rule,
    get_all_rules,
    get_executions,
    parse_spec,
    require_rule,
    rule_out,
)
from api.cases.service import get_case_by_reference
from api.db import utcnow
from api.errors import NotFound, PermissionDenied
from api.events.kinds import KINDS
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Regras", "/regras", None, 70))

_EMPTY_RULE: dict[str, Any] = {
    "name": "",
    "description": "",
    "enabled": True,
    "allow_rule_events": False,
    "trigger": {"type": "event", "event": "message.received"},
    "conditions": {},
    "actions": [{"type": "add_note", "text": "…"}],
}


def _check_supervisor(analyst: Analyst) -> None:
    if not analyst.has_role(Role.SUPERVISOR):
        raise PermissionDenied("Somente supervisores alteram regras de automação.")


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2)


def _form_context(data: dict[str, Any], error: str | None) -> dict[str, Any]:
    return {
        "form": {
            "name": data.get("name", ""),
            "description": data.get("description", ""),
            "enabled": bool(data.get("enabled", True)),
            "allow_rule_events": bool(data.get("allow_rule_events", False)),
            "trigger": _pretty(data.get("trigger", {})),
            "conditions": _pretty(data.get("conditions", {})),
            "actions": _pretty(data.get("actions", [])),
        },
        "error": error,
        "event_kinds": sorted(KINDS),
        "anchors": ANCHOR_LABELS,
    }


def _spec_from_form(
    name: str,
    description: str,
    enabled: str,
    allow_rule_events: str,
    trigger: str,
    conditions: str,
    actions: str,
) -> tuple[dict[str, Any], Any]:
    """The form's fields as rule data (kept to re-show the form) and the parsed rule."""
    data: dict[str, Any] = {
        "name": name,
        "description": description,
        "enabled": enabled == "1",
        "allow_rule_events": allow_rule_events == "1",
    }
    for field, text in (("trigger", trigger), ("conditions", conditions), ("actions", actions)):
        try:
            data[field] = json.loads(text or ("[]" if field == "actions" else "{}"))
        except json.JSONDecodeError as exc:
            data[field] = text
            message = f"JSON inválido em {field}: {exc.msg} (linha {exc.lineno})."
            raise _FormError(data, message) from exc
    try:
        return data, parse_spec(data)
    except RuleInvalid as exc:
        raise _FormError(data, exc.message) from exc


class _FormError(RuleInvalid):
    """A refused form, with what was typed (the form is shown again with the reason)."""

    def __init__(self, data: dict[str, Any], message: str) -> None:
        super().__init__(message)
        self.data = data


@router.get("/regras")
async def rules_page(request: Request, session: DbSession, analyst: PanelAnalyst) -> HTMLResponse:
    rules = [rule_out(rule) for rule in await get_all_rules(session)]
    executions = await get_executions(session, limit=30)
    return render_page(
        request,
        "regras.html",
        {
            "rules": rules,
            "executions": executions,
            "can_edit": analyst.has_role(Role.SUPERVISOR),
            "limits": limits(),
        },
        analyst=analyst,
    )


@router.get("/regras/simular")
async def dry_run_page(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    caso: Annotated[str, Query(max_length=40)] = "",
) -> HTMLResponse:
    result = None
    error = None
    reference = caso.strip()
    if reference:
        case = await get_case_by_reference(session, reference=reference)
        if case is None:
            error = f"Caso {reference} não encontrado."
        else:
            result = await get_dry_run(session, case_id=case.id, now=utcnow())
    return render_page(
        request,
        "regras_simular.html",
        {"reference": reference, "result": result, "error": error},
        analyst=analyst,
    )


@router.get("/regras/nova")
async def new_rule_page(
    request: Request, session: DbSession, analyst: PanelAnalyst
) -> HTMLResponse:
    _check_supervisor(analyst)
    return render_page(
        request,
        "regras_editar.html",
        {"rule": None, "executions": [], "can_edit": True, **_form_context(_EMPTY_RULE, None)},
        analyst=analyst,
    )


@router.post("/regras/nova", response_model=None)
async def create_rule_form(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    nome: Annotated[str, Form(max_length=120)] = "",
    descricao: Annotated[str, Form(max_length=2000)] = "",
    ativa: Annotated[str, Form(max_length=1)] = "",
    eventos_de_regras: Annotated[str, Form(max_length=1)] = "",
    gatilho: Annotated[str, Form(max_length=4000)] = "",
    condicoes: Annotated[str, Form(max_length=8000)] = "",
    acoes: Annotated[str, Form(max_length=16000)] = "",
) -> Response:
    _check_supervisor(analyst)
    try:
        data, spec = _spec_from_form(
            nome, descricao, ativa, eventos_de_regras, gatilho, condicoes, acoes
        )
        rule = await create_rule(session, spec=spec, analyst=analyst)
    except _FormError as exc:
        return _form_again(request, analyst, None, exc.data, exc.message)
    except RuleInvalid as exc:
        return _form_again(request, analyst, None, data, exc.message)
    return redirect(f"{PANEL_PREFIX}/regras/{rule.id}")


@router.get("/regras/{rule_id}")
async def rule_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, rule_id: PathId
) -> HTMLResponse:
    rule = await require_rule(session, rule_id=rule_id)
    out = rule_out(rule)
    executions = await get_executions(session, rule_id=rule.id, limit=30)
    return render_page(
        request,
        "regras_editar.html",
        {
            "rule": out,
            "executions": executions,
            "can_edit": analyst.has_role(Role.SUPERVISOR),
            **_form_context(out.model_dump(mode="json"), None),
        },
        analyst=analyst,
    )


@router.post("/regras/{rule_id}", response_model=None)
async def update_rule_form(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    rule_id: PathId,
    nome: Annotated[str, Form(max_length=120)] = "",
    descricao: Annotated[str, Form(max_length=2000)] = "",
    ativa: Annotated[str, Form(max_length=1)] = "",
    eventos_de_regras: Annotated[str, Form(max_length=1)] = "",
    gatilho: Annotated[str, Form(max_length=4000)] = "",
    condicoes: Annotated[str, Form(max_length=8000)] = "",
    acoes: Annotated[str, Form(max_length=16000)] = "",
) -> Response:
    _check_supervisor(analyst)
    rule = await require_rule(session, rule_id=rule_id)
    try:
        data, spec = _spec_from_form(
            nome, descricao, ativa, eventos_de_regras, gatilho, condicoes, acoes
        )
        await do_update_rule(session, rule=rule, spec=spec, analyst=analyst)
    except _FormError as exc:
        return _form_again(request, analyst, rule_out(rule), exc.data, exc.message)
    except RuleInvalid as exc:
        return _form_again(request, analyst, rule_out(rule), data, exc.message)
    return redirect(f"{PANEL_PREFIX}/regras/{rule.id}")


def _form_again(
    request: Request, analyst: Analyst, rule: Any, data: dict[str, Any], message: str
) -> HTMLResponse:
    return render_page(
        request,
        "regras_editar.html",
        {"rule": rule, "executions": [], "can_edit": True, **_form_context(data, message)},
        analyst=analyst,
        status_code=422,
    )


@router.post("/regras/{rule_id}/ativa")
async def set_enabled_form(
    session: DbSession,
    analyst: PanelWriter,
    rule_id: PathId,
    ativa: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    _check_supervisor(analyst)
    rule = await require_rule(session, rule_id=rule_id)
    if ativa not in ("0", "1"):
        raise NotFound("Ação desconhecida.")
    await do_set_enabled(session, rule=rule, enabled=ativa == "1", analyst=analyst)
    return redirect(f"{PANEL_PREFIX}/regras")
