"""The cases list: one search box, filters kept in the URL, sortable columns, pages, and bulk
actions on a selection (move status, assign the responsible analyst, send the notice). The
results part is refreshed by HTMX as the analyst types or filters (and the URL follows)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import QueryParams

from api.analysts.admin import require_analyst
from api.cases.bulk import do_bulk_assign, do_bulk_change_status
from api.cases.lifecycle import STATUS_LABELS, CaseStatus
from api.cases.search import PAGE_SIZES, CaseQuery, Sort, get_list_options, search_cases
from api.conversations.models import Channel
from api.errors import ValidationFailed
from api.handoff.service import analyst_actor
from api.ids import MAX_ID
from api.outreach.service import actor_for, do_create_batch, parse_channel
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Casos", "/casos", None, 10))

# The query keys the list understands, in the order the URL shows them.
_KEYS = (
    "q",
    "status",
    "marca",
    "canal",
    "responsavel",
    "etiqueta",
    "acompanhamento",
    "prazo_vencido",
    "alertas",
    "ordem",
    "dir",
    "por_pagina",
)


def _int(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError as exc:
        raise ValidationFailed(f"{what} inválido: {value!r}.") from exc
    if not 1 <= number <= MAX_ID:
        raise ValidationFailed(f"{what} inválido: {value!r}.")
    return number


def parse_query(params: QueryParams) -> CaseQuery:
    """The list's URL, read strictly: an unknown status or channel is a clear error."""
    statuses: list[CaseStatus] = []
    for raw in params.getlist("status"):
        if raw:
            try:
                statuses.append(CaseStatus(raw))
            except ValueError as exc:
                raise ValidationFailed(f"Status desconhecido: {raw!r}.") from exc
    channel_raw = params.get("canal") or ""
    try:
        channel = Channel(channel_raw) if channel_raw else None
    except ValueError as exc:
        raise ValidationFailed(f"Canal desconhecido: {channel_raw!r}.") from exc
    sort = params.get("ordem") or "recentes"
    return CaseQuery(
        text=(params.get("q") or "")[:200],
        statuses=tuple(statuses),
        brand_id=_int(params.get("marca"), "Marca"),
        channel=channel,
        assignee_id=_int(params.get("responsavel"), "Responsável"),
        tag=(params.get("etiqueta") or "").strip().lower()[:40] or None,
        follow_up_due=params.get("acompanhamento") == "1",
        deadline_passed=params.get("prazo_vencido") == "1",
        open_alerts=params.get("alertas") == "1",
        sort=sort if sort in Sort.KEYS else "recentes",
        descending=params.get("dir", "desc") != "asc",
        page=_int(params.get("pagina"), "Página") or 1,
        per_page=_int(params.get("por_pagina"), "Tamanho de página") or PAGE_SIZES[0],
    )


def _url_params(params: QueryParams) -> list[tuple[str, str]]:
    return [(k, v) for k in _KEYS for v in params.getlist(k) if v]


def _link(params: QueryParams, **changes: str | int | None) -> str:
    kept = [(k, v) for k, v in _url_params(params) if k not in changes]
    extra = [(k, str(v)) for k, v in changes.items() if v not in (None, "")]
    return f"{PANEL_PREFIX}/casos?" + urlencode(kept + extra)


async def _context(session: DbSession, request: Request) -> dict[str, Any]:
    params = request.query_params
    query = parse_query(params)
    page = await search_cases(session, query=query, today=dt.date.today())
    sort_links = {
        key: _link(
            params,
            ordem=key,
            dir="asc" if query.sort == key and query.descending else "desc",
            pagina=None,
        )
        for key in Sort.KEYS
    }
    return {
        "query": query,
        "page": page,
        "options": await get_list_options(session),
        "statuses": [(s, STATUS_LABELS[s]) for s in CaseStatus],
        "channels": list(Channel),
        "sorts": Sort.KEYS,
        "sort_links": sort_links,
        "prev_link": _link(params, pagina=page.page - 1) if page.page > 1 else None,
        "next_link": (
            _link(params, pagina=page.page + 1) if page.page < page.pages or page.capped else None
        ),
        "back_query": urlencode([*_url_params(params), ("pagina", str(page.page))]),
        "result": (params.get("resultado") or "")[:1000],
        "page_sizes": PAGE_SIZES,
    }


@router.get("/casos")
async def cases_list(request: Request, session: DbSession, analyst: PanelAnalyst) -> HTMLResponse:
    context = await _context(session, request)
    if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "resultado":
        return render_page(request, "_casos_lista.html", context, analyst=analyst)
    return render_page(request, "casos.html", context, analyst=analyst)


@router.post("/casos/lote")
async def bulk_action(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    acao: Annotated[str, Form(max_length=20)],
    status: Annotated[str, Form(max_length=40)] = "",
    responsavel: Annotated[str, Form(max_length=20)] = "",
    canal: Annotated[str, Form(max_length=20)] = "",
    motivo: Annotated[str, Form(max_length=200)] = "",
    volta: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    form = await request.form()
    case_ids = [i for i in (_int(str(v), "Caso") for v in form.getlist("caso")) if i is not None]
    actor = analyst_actor(analyst)
    if acao == "status":
        try:
            target = CaseStatus(status)
        except ValueError as exc:
            raise ValidationFailed("Escolha o novo status.") from exc
        summary = (
            await do_bulk_change_status(
                session,
                case_ids=case_ids,
                target=target,
                actor=actor,
                reason=motivo.strip() or None,
            )
        ).summary()
    elif acao == "atribuir":
        target_id = _int(responsavel, "Responsável")
        assignee = await require_analyst(session, analyst_id=target_id) if target_id else None
        summary = (
            await do_bulk_assign(session, case_ids=case_ids, assignee=assignee, analyst=analyst)
        ).summary()
    elif acao == "notificar":
        summary = await _send_notice(session, case_ids, canal, analyst.id)
    else:
        raise ValidationFailed("Escolha uma ação para os casos selecionados.")
    back = volta if volta and "\n" not in volta and "//" not in volta else ""
    separator = "&" if back else ""
    return redirect(f"{PANEL_PREFIX}/casos?{back}{separator}" + urlencode({"resultado": summary}))


async def _send_notice(session: DbSession, case_ids: list[int], channel: str, actor_id: int) -> str:
    """The notice batch of the outreach service, for the selection."""
    if not case_ids:
        raise ValidationFailed("Selecione ao menos um caso.")
    actor = await actor_for(session, actor_id)
    batch = await do_create_batch(
        session, case_ids=case_ids, channel=parse_channel(channel or "email"), actor=actor
    )
    return f"Notificação de {len(case_ids)} caso(s) enfileirada (lote {batch.id})."
