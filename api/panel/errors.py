"""Errors on panel routes become pt-BR pages (or a redirect to the login); everything else keeps
the JSON handlers of api/web/errors.py."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.errors import AppError
from api.panel.auth import PANEL_PREFIX, PanelLoginRequired, end_session
from api.panel.formatting import render_page

ERROR_TITLES = {
    400: "Requisição inválida",
    401: "Entre no painel",
    403: "Acesso negado",
    404: "Não encontrado",
    405: "Operação não permitida",
    409: "Não foi possível concluir",
    422: "Não foi possível concluir",
    500: "Erro interno",
    502: "Falha no provedor",
}
_BACK_RE = re.compile(rf"^{PANEL_PREFIX}/(conversas|casos)/\d+")

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def _is_panel(request: Request) -> bool:
    path = request.url.path
    return path == PANEL_PREFIX or path.startswith(PANEL_PREFIX + "/")


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A pt-BR page for an error on a panel route, with a way back to where the analyst was."""
    match = _BACK_RE.match(request.url.path)
    back = match.group(0) if match else f"{PANEL_PREFIX}/caixa"
    return render_page(
        request,
        "erro.html",
        {
            "title": ERROR_TITLES.get(status_code, "Não foi possível concluir"),
            "message": message,
            "back": back,
            "status_code": status_code,
        },
        analyst=None,
        status_code=status_code,
    )


def _login_redirect(request: Request) -> Response:
    target = f"{PANEL_PREFIX}/login"
    if request.method == "GET" and request.url.path not in (f"{PANEL_PREFIX}/events",):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?" + urlencode({"proximo": path})
    response: Response
    if request.headers.get("HX-Request"):
        # An HTMX fragment request: tell htmx to load the login page instead of a fragment.
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    # A signed cookie of a deactivated or deleted analyst must not bounce between the login
    # page and the panel.
    end_session(response)
    return response


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        return await result
    return result


def install_panel_error_handlers(app: FastAPI) -> None:
    """Panel routes answer errors with pages (pt-BR), everything else keeps the JSON handlers.
    Call after `api.web.errors.install_error_handlers` (it wraps the handlers found there)."""
    previous_app_error: Handler | None = app.exception_handlers.get(AppError)
    previous_invalid: Handler | None = app.exception_handlers.get(RequestValidationError)
    previous_http: Handler | None = app.exception_handlers.get(StarletteHTTPException)
    previous_unexpected: Handler | None = app.exception_handlers.get(Exception)

    async def app_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, PanelLoginRequired):
            return _login_redirect(request)
        if _is_panel(request) and isinstance(exc, AppError):
            return error_page(request, exc.status_code, exc.message)
        if previous_app_error is None:
            raise exc
        return await _call(previous_app_error, request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        if _is_panel(request):
            return error_page(request, 422, "Dados do formulário inválidos ou incompletos.")
        if previous_invalid is None:
            raise exc
        return await _call(previous_invalid, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        if _is_panel(request) and isinstance(exc, StarletteHTTPException):
            messages = {404: "Página não encontrada.", 405: "Operação não permitida aqui."}
            return error_page(
                request, exc.status_code, messages.get(exc.status_code, "Requisição inválida.")
            )
        if previous_http is None:
            raise exc
        return await _call(previous_http, request, exc)

    async def unexpected(request: Request, exc: Exception) -> Response:
        if _is_panel(request):
            if previous_unexpected is not None:
                await _call(previous_unexpected, request, exc)  # logs it
            return error_page(request, 500, "Erro interno. Tente de novo em instantes.")
        if previous_unexpected is None:
            raise exc
        return await _call(previous_unexpected, request, exc)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
