"""Panel: mailboxes (admins) — provider, state, cursor, last sync, last error, push expiry; sync
now, disable/enable. Mailboxes are added with `tratativa mailboxes add` (secrets stay in the
environment)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst, Role
from api.channels.mailboxes.service import (
    do_request_sync_by_id,
    do_set_enabled_by_id,
    get_mailboxes_view,
)
from api.errors import PermissionDenied
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Caixas postais", "/caixas-postais", frozenset({Role.ADMIN}), 86))


def _check_admin(analyst: Analyst) -> None:
    if not analyst.has_role(Role.ADMIN):
        raise PermissionDenied("Somente administradores gerenciam as caixas postais.")


@router.get("/caixas-postais")
async def mailboxes_page(
    request: Request, session: DbSession, analyst: PanelAnalyst
) -> HTMLResponse:
    _check_admin(analyst)
    mailboxes = await get_mailboxes_view(session)
    return render_page(request, "caixas_postais.html", {"mailboxes": mailboxes}, analyst=analyst)


@router.post("/caixas-postais/{mailbox_id}/sincronizar", response_model=None)
async def sync_now(mailbox_id: PathId, session: DbSession, analyst: PanelWriter) -> Response:
    _check_admin(analyst)
    await do_request_sync_by_id(session, mailbox_id=mailbox_id)
    return redirect(f"{PANEL_PREFIX}/caixas-postais")


@router.post("/caixas-postais/{mailbox_id}/ativa", response_model=None)
async def set_enabled(
    mailbox_id: PathId,
    session: DbSession,
    analyst: PanelWriter,
    ativa: Annotated[str, Form()] = "0",
) -> Response:
    _check_admin(analyst)
    await do_set_enabled_by_id(session, mailbox_id=mailbox_id, enabled=ativa == "1")
    return redirect(f"{PANEL_PREFIX}/caixas-postais")
