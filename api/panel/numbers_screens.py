"""Panel: WhatsApp numbers (admins) — list, add, make default, disable/enable. The unofficial
gateways (Z-API, UltraMsg) carry their warning: risk of ban, no template approval."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst, Role
from api.channels.numbers.service import (
    create_number,
    do_set_active,
    do_set_default,
    get_numbers_view,
)
from api.errors import AppError, PermissionDenied
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Números", "/numeros", frozenset({Role.ADMIN}), 85))


def _check_admin(analyst: Analyst) -> None:
    if not analyst.has_role(Role.ADMIN):
        raise PermissionDenied("Somente administradores gerenciam os números de WhatsApp.")


@router.get("/numeros")
async def numbers_page(request: Request, session: DbSession, analyst: PanelAnalyst) -> HTMLResponse:
    _check_admin(analyst)
    context = await get_numbers_view(session)
    return render_page(
        request, "numeros.html", {**context, "error": None, "form": None}, analyst=analyst
    )


@router.post("/numeros", response_model=None)
async def add_number(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    provider: Annotated[str, Form()],
    number: Annotated[str, Form()],
    label: Annotated[str, Form()] = "",
    account_id: Annotated[str, Form()] = "",
    token_env: Annotated[str, Form()] = "",
    padrao: Annotated[str, Form()] = "",
) -> Response:
    _check_admin(analyst)
    try:
        await create_number(
            session,
            provider=provider,
            number=number,
            label=label,
            account_id=account_id,
            token_env=token_env,
            is_default=padrao == "1",
        )
    except AppError as exc:
        context = await get_numbers_view(session)
        form = {
            "provider": provider,
            "number": number,
            "label": label,
            "account_id": account_id,
            "token_env": token_env,
        }
        return render_page(
            request,
            "numeros.html",
            {**context, "error": exc.message, "form": form},
            analyst=analyst,
            status_code=exc.status_code,
        )
    return redirect(f"{PANEL_PREFIX}/numeros")


@router.post("/numeros/{number_id}/padrao", response_model=None)
async def make_default(number_id: PathId, session: DbSession, analyst: PanelWriter) -> Response:
    _check_admin(analyst)
    await do_set_default(session, number_id=number_id)
    return redirect(f"{PANEL_PREFIX}/numeros")


@router.post("/numeros/{number_id}/ativo", response_model=None)
async def set_active(
    number_id: PathId,
    session: DbSession,
    analyst: PanelWriter,
    ativo: Annotated[str, Form()] = "0",
) -> Response:
    _check_admin(analyst)
    await do_set_active(session, number_id=number_id, active=ativo == "1")
    return redirect(f"{PANEL_PREFIX}/numeros")
