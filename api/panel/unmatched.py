"""The unmatched queue: inbound mail (and messages) that matched no case, with ranked
suggestions; confirm one, name another case by reference, reject a suggestion, or create a new
infringer and case from the message."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.inbox.queue import (
    do_confirm_message,
    do_create_case_from_message,
    do_reject_message_suggestion,
    get_unmatched_queue,
    resolve_case_choice,
)
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import Offset, PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Não vinculados", "/nao-vinculados", None, 30))
_QUEUE = f"{PANEL_PREFIX}/nao-vinculados"


@router.get("/nao-vinculados")
async def unmatched_queue(
    request: Request, session: DbSession, analyst: PanelAnalyst, inicio: Offset = 0
) -> HTMLResponse:
    queue = await get_unmatched_queue(session, offset=inicio)
    return render_page(
        request,
        "nao_vinculados.html",
        {"items": queue.items, "brands": queue.brands, "offset": inicio},
        analyst=analyst,
    )


@router.post("/nao-vinculados/{message_id}/confirmar")
async def confirm(
    session: DbSession,
    analyst: PanelWriter,
    message_id: PathId,
    caso: Annotated[str, Form(max_length=12)] = "",
    referencia: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    case_id = await resolve_case_choice(
        session, case_id=int(caso) if caso.isdigit() else None, reference=referencia
    )
    await do_confirm_message(session, message_id=message_id, case_id=case_id, analyst=analyst)
    return redirect(_QUEUE)


@router.post("/nao-vinculados/{message_id}/rejeitar")
async def reject(
    session: DbSession,
    analyst: PanelWriter,
    message_id: PathId,
    caso: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    await do_reject_message_suggestion(
        session, message_id=message_id, case_id=caso, analyst=analyst
    )
    return redirect(_QUEUE)


@router.post("/nao-vinculados/{message_id}/novo-caso")
async def new_case(
    session: DbSession,
    analyst: PanelWriter,
    message_id: PathId,
    marca: Annotated[int, Form(ge=1, le=2**31 - 1)],
    nome: Annotated[str, Form(max_length=200)] = "",
    documento: Annotated[str, Form(max_length=30)] = "",
) -> Response:
    case = await do_create_case_from_message(
        session,
        message_id=message_id,
        name=nome,
        brand_id=marca,
        document=documento,
        analyst=analyst,
    )
    return redirect(f"{PANEL_PREFIX}/casos/{case.id}")
