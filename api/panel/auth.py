"""Panel sessions: a signed HttpOnly cookie carrying the analyst and a per-session CSRF token,
and the dependencies that guard panel pages and form posts.

The cookie is a short JWT (HS256, SECRET_KEY) with its own audience, so an API bearer token is
not a panel session and a panel cookie is not an API token. It names a server-side session
(`jti`, api/analysts/sessions.py) that must still be live: logout, a password change or a
deactivation ends it, whatever the browser still holds. The CSRF token lives inside the
signed cookie (the page cannot read it, an attacker cannot forge it) and is echoed by every
form (hidden field) and HTMX request (`X-CSRF-Token` header).
"""

from __future__ import annotations

import datetime as dt
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, SessionKind
from api.analysts.sessions import create_auth_session, do_revoke_session, get_session_analyst
from api.config import get_settings
from api.errors import AuthenticationRequired, PermissionDenied
from api.web.deps import get_session

PANEL_PREFIX = "/painel"
SESSION_COOKIE = "tratativa_painel"
LOGIN_COOKIE = "tratativa_painel_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_ALGORITHM = "HS256"
_SESSION_AUDIENCE = "tratativa:painel"
_LOGIN_AUDIENCE = "tratativa:painel-login"
_LOGIN_TTL = dt.timedelta(hours=2)


# Commit before the response is sent (FastAPI's default "request" scope for yield dependencies
# commits only after the response went out: a redirect could be followed before the commit, and
# an SSE stream would hold a database connection for as long as the browser stays connected).
DbSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


class PanelLoginRequired(AuthenticationRequired):
    """No valid panel session: the panel's error handler answers with a redirect to the login."""

    code = "panel_login_required"


@dataclass(frozen=True)
class SessionCookie:
    analyst_id: int
    session_id: str
    csrf_token: str


def _key() -> str:
    return get_settings().secret_key.get_secret_value()


def _secure() -> bool:
    return get_settings().public_base_url.lower().startswith("https://")


def _encode(payload: dict[str, Any], *, audience: str, ttl: dt.timedelta) -> str:
    now = dt.datetime.now(dt.UTC)
    claims = {**payload, "aud": audience, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, _key(), algorithm=_ALGORITHM)


def _decode(token: str | None, *, audience: str) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        claims: dict[str, Any] = jwt.decode(
            token, _key(), algorithms=[_ALGORITHM], audience=audience
        )
    except jwt.PyJWTError:
        return None
    return claims


def read_session(request: Request) -> SessionCookie | None:
    """The session in the request's cookie, or None when absent, forged or expired (whether
    it is still live on the server is `panel_analyst`'s check)."""
    claims = _decode(request.cookies.get(SESSION_COOKIE), audience=_SESSION_AUDIENCE)
    if claims is None:
        return None
    try:
        return SessionCookie(
            analyst_id=int(claims["sub"]),
            session_id=str(claims["jti"]),
            csrf_token=str(claims["csrf"]),
        )
    except (KeyError, ValueError):
        return None


async def start_session(session: AsyncSession, response: Response, analyst: Analyst) -> None:
    """Log the analyst in: a new server-side session, its cookie, a fresh CSRF token."""
    ttl = dt.timedelta(minutes=get_settings().token_ttl_minutes)
    auth_session = await create_auth_session(
        session, analyst_id=analyst.id, kind=SessionKind.PANEL, ttl=ttl
    )
    token = _encode(
        {"sub": str(analyst.id), "jti": auth_session.id, "csrf": secrets.token_urlsafe(32)},
        audience=_SESSION_AUDIENCE,
        ttl=ttl,
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl.total_seconds()),
        path=PANEL_PREFIX,
        secure=_secure(),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_COOKIE, path=PANEL_PREFIX)


async def do_logout(request: Request, session: AsyncSession, response: Response) -> None:
    """End the request's panel session on the server and drop its cookie."""
    panel_session = read_session(request)
    if panel_session is not None:
        await do_revoke_session(session, session_id=panel_session.session_id)
    end_session(response)


def end_session(response: Response) -> None:
    """Drop the session cookie (the server-side session is `do_logout`'s)."""
    response.delete_cookie(
        SESSION_COOKIE, path=PANEL_PREFIX, secure=_secure(), httponly=True, samesite="lax"
    )


def login_form_token(request: Request) -> tuple[str, str | None]:
    """The CSRF token of the login form (login CSRF), kept in a signed pre-session cookie:
    (token, the cookie value to set, or None when the browser's cookie is still good)."""
    claims = _decode(request.cookies.get(LOGIN_COOKIE), audience=_LOGIN_AUDIENCE)
    if claims is not None and isinstance(claims.get("csrf"), str):
        return str(claims["csrf"]), None
    token = secrets.token_urlsafe(32)
    return token, _encode({"csrf": token}, audience=_LOGIN_AUDIENCE, ttl=_LOGIN_TTL)


def set_login_cookie(response: Response, value: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE,
        value,
        max_age=int(_LOGIN_TTL.total_seconds()),
        path=PANEL_PREFIX,
        secure=_secure(),
        httponly=True,
        samesite="lax",
    )


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    form = await request.form()  # Starlette caches it; the route's Form() fields read the same
    value = form.get(CSRF_FIELD)
    return value if isinstance(value, str) else ""


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


async def check_login_csrf(request: Request) -> None:
    """The login form must carry the token of its pre-session cookie."""
    claims = _decode(request.cookies.get(LOGIN_COOKIE), audience=_LOGIN_AUDIENCE)
    expected = str(claims.get("csrf", "")) if claims else ""
    if not expected or not _same(await _submitted_csrf(request), expected):
        raise PermissionDenied(
            "Formulário de login expirado ou inválido. Recarregue a página e tente de novo.",
            code="csrf_failed",
        )


async def panel_analyst(request: Request, session: DbSession) -> Analyst:
    """The logged-in analyst; anyone else is sent to the login page."""
    panel_session = read_session(request)
    if panel_session is None:
        raise PanelLoginRequired("Entre no painel para continuar.")
    analyst = await get_session_analyst(
        session,
        session_id=panel_session.session_id,
        analyst_id=panel_session.analyst_id,
        kind=SessionKind.PANEL,
    )
    if analyst is None:
        raise PanelLoginRequired("Sessão encerrada. Entre novamente.")
    request.state.panel_csrf = panel_session.csrf_token
    return analyst


PanelAnalyst = Annotated[Analyst, Depends(panel_analyst)]


async def check_csrf(request: Request, analyst: PanelAnalyst) -> Analyst:
    """Every state-changing panel request carries the session's CSRF token."""
    if not _same(await _submitted_csrf(request), str(request.state.panel_csrf)):
        raise PermissionDenied(
            "Falha na verificação de segurança do formulário (CSRF). "
            "Recarregue a página e tente de novo.",
            code="csrf_failed",
        )
    return analyst


PanelWriter = Annotated[Analyst, Depends(check_csrf)]


def csrf_token_of(request: Request) -> str:
    """The CSRF token for the forms of a page rendered for a logged-in analyst."""
    return str(getattr(request.state, "panel_csrf", ""))
