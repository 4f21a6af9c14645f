"""Users: admins create analysts, change roles, deactivate (ending every open session of the
account at once) and reactivate accounts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.admin import (
    check_can_admin_users,
    do_change_role,
    do_create_user,
    do_deactivate_user,
    do_reactivate_user,
    get_analysts,
    parse_role,
)
from api.analysts.models import Role
from api.errors import AppError
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Usuários", "/usuarios", frozenset({Role.ADMIN}), 90))
_USERS = f"{PANEL_PREFIX}/usuarios"


@router.get("/usuarios")
async def users(request: Request, session: DbSession, analyst: PanelAnalyst) -> HTMLResponse:
    check_can_admin_users(analyst)
    return render_page(
        request,
        "usuarios.html",
        {"users": await get_analysts(session), "roles": list(Role), "error": None, "form": {}},
        analyst=analyst,
    )


@router.post("/usuarios")
async def create_user(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    nome: Annotated[str, Form(max_length=120)] = "",
    email: Annotated[str, Form(max_length=254)] = "",
    papel: Annotated[str, Form(max_length=16)] = "analyst",
    senha: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    check_can_admin_users(analyst)
    try:
        await do_create_user(
            session, actor=analyst, email=email, name=nome, role=parse_role(papel), password=senha
        )
    except AppError as exc:
        # The form comes back as typed (but the password), with the reason.
        return render_page(
            request,
            "usuarios.html",
            {
                "users": await get_analysts(session),
                "roles": list(Role),
                "error": exc.message,
                "form": {"nome": nome, "email": email, "papel": papel},
            },
            analyst=analyst,
            status_code=exc.status_code,
        )
    return redirect(_USERS)


@router.post("/usuarios/{analyst_id}/papel")
async def change_role(
    session: DbSession,
    analyst: PanelWriter,
    analyst_id: PathId,
    papel: Annotated[str, Form(max_length=16)],
) -> Response:
    await do_change_role(session, actor=analyst, analyst_id=analyst_id, role=parse_role(papel))
    return redirect(_USERS)


@router.post("/usuarios/{analyst_id}/desativar")
async def deactivate(session: DbSession, analyst: PanelWriter, analyst_id: PathId) -> Response:
    await do_deactivate_user(session, actor=analyst, analyst_id=analyst_id)
    return redirect(_USERS)


@router.post("/usuarios/{analyst_id}/reativar")
async def reactivate(session: DbSession, analyst: PanelWriter, analyst_id: PathId) -> Response:
    await do_reactivate_user(session, actor=analyst, analyst_id=analyst_id)
    return redirect(_USERS)
