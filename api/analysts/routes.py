"""`POST /api/v1/auth/token` (OAuth2 password flow), `POST /api/v1/auth/logout` and
`GET /api/v1/me`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.analysts.models import Role, SessionKind
from api.analysts.service import do_login
from api.analysts.sessions import create_auth_session, do_revoke_session
from api.config import get_settings
from api.errors import AuthenticationRequired
from api.web.deps import CurrentAnalyst, CurrentApiSession, SessionDep, client_address
from api.web.errors import error_response
from api.web.tokens import create_token

router = APIRouter(prefix="/api/v1", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"


class AnalystOut(BaseModel):
    id: int
    email: str
    name: str
    role: Role


class ErrorOut(BaseModel):
    error: dict[str, Any]


@router.post(
    "/auth/token",
    response_model=TokenOut,
    responses={
        401: {"model": ErrorOut, "description": "Wrong e-mail or password."},
        429: {
            "model": ErrorOut,
            "description": "Too many failed logins for this account or client address; "
            "retry after the number of seconds in the Retry-After header.",
        },
    },
)
async def issue_token(
    request: Request, session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Any:
    try:
        analyst = await do_login(
            session, email=form.username, password=form.password, address=client_address(request)
        )
    except AuthenticationRequired as exc:
        return error_response(exc)  # answered, not raised: the failure must be committed
    ttl = dt.timedelta(minutes=get_settings().token_ttl_minutes)
    auth_session = await create_auth_session(
        session, analyst_id=analyst.id, kind=SessionKind.API, ttl=ttl
    )
    return TokenOut(access_token=create_token(analyst.id, session_id=auth_session.id, ttl=ttl))


@router.post(
    "/auth/logout",
    status_code=204,
    responses={401: {"model": ErrorOut, "description": "Missing, invalid or revoked token."}},
)
async def logout(session: SessionDep, api_session: CurrentApiSession) -> Response:
    """Revoke the bearer token of this request: it is refused from now on."""
    await do_revoke_session(session, session_id=api_session.session_id)
    return Response(status_code=204)


@router.get("/me")
async def me(analyst: CurrentAnalyst) -> AnalystOut:
    return AnalystOut(id=analyst.id, email=analyst.email, name=analyst.name, role=analyst.role)
