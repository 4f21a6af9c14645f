"""The case page: status, listings, payments, conversations and recent timeline; status moves
and notes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.cases.lifecycle import CaseStatus
from api.cases.service import do_change_status, require_case
from api.cases.views import get_case_view
from api.config import get_settings
from api.errors import ValidationFailed
from api.handoff.service import analyst_actor, do_add_note
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import MAX_TEXT, redirect, render_page
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


@router.get("/casos/{case_id}")
async def case_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, case_id: PathId
) -> HTMLResponse:
    view = await get_case_view(session, case_id=case_id)
    return render_page(
        request,
        "caso.html",
        {
            "case": view.case,
            "moves": view.moves,
            "payments": view.payments,
            "conversations": view.conversations,
            "entries": view.entries,
            "public_base_url": get_settings().public_base_url.rstrip("/"),
        },
        analyst=analyst,
    )


@router.post("/casos/{case_id}/status")
async def change_case_status(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    status: Annotated[str, Form(max_length=40)],
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        target = CaseStatus(status)
    except ValueError as exc:
        raise ValidationFailed(f"Status desconhecido: {status!r}.") from exc
    case = await require_case(session, case_id=case_id)
    await do_change_status(
        session,
        case=case,
        target=target,
        actor=analyst_actor(analyst),
        reason=motivo.strip() or None,
    )
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")


@router.post("/casos/{case_id}/notas")
async def add_case_note(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    case = await require_case(session, case_id=case_id)
    await do_add_note(session, analyst=analyst, text=texto, case=case)
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")
