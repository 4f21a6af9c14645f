"""The person page: every case of an infringer, every message from or to any of their
addresses in one timeline, opt-out state (lifted by a supervisor) and the LGPD actions."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Role
from api.contacts.person import (
    build_person_export,
    check_is_supervisor,
    do_lift_restriction,
    do_restrict_processing,
    get_person_view,
)
from api.contacts.service import do_lift_opt_out
from api.errors import NotFound
from api.handoff.service import analyst_actor
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.web.params import PathId, QueryId
from api.web.security import apply_security_headers

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


def _back(infringer_id: int) -> Response:
    return redirect(f"{PANEL_PREFIX}/pessoas/{infringer_id}")


@router.get("/pessoas/{infringer_id}")
async def person_page(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    infringer_id: PathId,
    antes: QueryId = None,
) -> HTMLResponse:
    view = await get_person_view(session, infringer_id=infringer_id, before_id=antes)
    return render_page(
        request,
        "pessoa.html",
        {
            "person": view.infringer,
            "contacts": view.contacts,
            "cases": view.cases,
            "messages": view.messages,
            "more_before": view.more_before,
            "paged": antes is not None,
            "is_supervisor": analyst.has_role(Role.SUPERVISOR),
        },
        analyst=analyst,
    )


@router.post("/pessoas/{infringer_id}/contatos/{contact_id}/liberar")
async def lift_opt_out(
    session: DbSession,
    analyst: PanelWriter,
    infringer_id: PathId,
    contact_id: PathId,
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_is_supervisor(analyst, "liberar um contato que pediu para não receber mensagens")
    view = await get_person_view(session, infringer_id=infringer_id)
    if all(c.id != contact_id for c in view.contacts):
        raise NotFound("Contato não encontrado para esta pessoa.")
    await do_lift_opt_out(
        session, contact_id=contact_id, actor=analyst_actor(analyst), reason=motivo
    )
    return _back(infringer_id)


@router.post("/pessoas/{infringer_id}/exportar")
async def export_person(session: DbSession, analyst: PanelWriter, infringer_id: PathId) -> Response:
    document = await build_person_export(session, infringer_id=infringer_id, analyst=analyst)
    body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")
    response = Response(
        body,
        media_type="application/json; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="dados-pessoa-{infringer_id}.json"',
            "Cache-Control": "no-store",
        },
    )
    apply_security_headers(response)
    return response


@router.post("/pessoas/{infringer_id}/restringir")
async def restrict_processing(
    session: DbSession,
    analyst: PanelWriter,
    infringer_id: PathId,
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await do_restrict_processing(session, infringer_id=infringer_id, analyst=analyst, reason=motivo)
    return _back(infringer_id)


@router.post("/pessoas/{infringer_id}/liberar-tratamento")
async def lift_restriction(
    session: DbSession,
    analyst: PanelWriter,
    infringer_id: PathId,
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    await do_lift_restriction(session, infringer_id=infringer_id, analyst=analyst, reason=motivo)
    return _back(infringer_id)
