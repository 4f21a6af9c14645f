"""FastAPI dependencies: the request's unit of work and the authenticated analyst."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role, SessionKind
from api.analysts.sessions import get_session_analyst
from api.db import unit_of_work
from api.errors import AuthenticationRequired, PermissionDenied
from api.web.tokens import read_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed here and nowhere else."""
    async with unit_of_work() as session:
        yield session


def client_address(request: Request) -> str:
    """The client's address (behind TRUSTED_PROXIES, the one they forwarded: see
    api/web/proxies.py)."""
    return request.client.host if request.client is not None else "unknown"


# scope="function": the commit happens before the response is sent (with the default scope,
# FastAPI finishes yield dependencies after responding, so a failed commit would answer 200).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


@dataclass(frozen=True)
class ApiSession:
    analyst: Analyst
    session_id: str


async def current_api_session(
    session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> ApiSession:
    """The bearer token's analyst, if its signature holds and its session is still live."""
    if not token:
        raise AuthenticationRequired("Autenticação necessária.")
    claims = read_token(token)
    analyst = (
        await get_session_analyst(
            session,
            session_id=claims.session_id,
            analyst_id=claims.analyst_id,
            kind=SessionKind.API,
        )
        if claims is not None
        else None
    )
    if analyst is None or claims is None:
        raise AuthenticationRequired("Sessão inválida, encerrada ou expirada.")
    return ApiSession(analyst=analyst, session_id=claims.session_id)


CurrentApiSession = Annotated[ApiSession, Depends(current_api_session)]


async def current_analyst(api_session: CurrentApiSession) -> Analyst:
    return api_session.analyst


CurrentAnalyst = Annotated[Analyst, Depends(current_analyst)]


def require_role(role: Role) -> Callable[[Analyst], Coroutine[Any, Any, Analyst]]:
    async def check(analyst: CurrentAnalyst) -> Analyst:
        if not analyst.has_role(role):
            raise PermissionDenied(f"Esta ação exige o papel {role}.")
        return analyst

    return check
