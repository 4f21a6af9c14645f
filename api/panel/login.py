"""The panel's login and logout (the session itself is api/panel/auth.py's)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.analysts.service import do_login
from api.errors import AuthenticationRequired, TooManyRequests
from api.panel.auth import (
    PANEL_PREFIX,
    DbSession,
    PanelWriter,
    check_login_csrf,
    do_logout,
    login_form_token,
    read_session,
    set_login_cookie,
    start_session,
)
from api.panel.formatting import redirect, render_page
from api.web.deps import client_address

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


def _safe_next(value: str | None) -> str:
    """Only a path inside the panel: never another host (open redirect)."""
    default = f"{PANEL_PREFIX}/caixa"
    if not value or "\\" in value or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(PANEL_PREFIX + "/"):
        return default
    return value


@router.get("")
@router.get("/")
async def panel_root() -> RedirectResponse:
    return redirect(f"{PANEL_PREFIX}/caixa")


def _login_response(
    request: Request, *, error: str | None, email: str, next_url: str, status_code: int = 200
) -> HTMLResponse:
    token, cookie = login_form_token(request)
    response = render_page(
        request,
        "login.html",
        {"error": error, "email": email, "next": next_url, "login_csrf": token},
        analyst=None,
        status_code=status_code,
    )
    if cookie is not None:
        set_login_cookie(response, cookie)
    return response


@router.get("/login")
async def login_page(request: Request, proximo: str | None = None) -> Response:
    if read_session(request) is not None:
        return redirect(_safe_next(proximo))
    return _login_response(request, error=None, email="", next_url=_safe_next(proximo))


@router.post("/login")
async def login_submit(
    request: Request,
    session: DbSession,
    email: Annotated[str, Form(max_length=254)] = "",
    senha: Annotated[str, Form(max_length=512)] = "",
    proximo: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await check_login_csrf(request)
    try:
        analyst = await do_login(
            session, email=email, password=senha, address=client_address(request)
        )
    except (AuthenticationRequired, TooManyRequests) as exc:
        refused = _login_response(
            request,
            error=exc.message,
            email=email,
            next_url=_safe_next(proximo),
            status_code=exc.status_code,
        )
        if isinstance(exc, TooManyRequests):
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    response = redirect(_safe_next(proximo))
    await start_session(session, response, analyst)
    return response


@router.post("/sair")
async def logout(request: Request, session: DbSession, _analyst: PanelWriter) -> RedirectResponse:
    response = redirect(f"{PANEL_PREFIX}/login")
    await do_logout(request, session, response)
    return response
