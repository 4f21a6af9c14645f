"""FastAPI dependencies: the request's unit of work and the authenticated analyst."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.db import run_after_commit
from api.errors import AuthenticationRequired, PermissionDenied
from api.web.tokens import read_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


async def get_session() -> AsyncIterator[AsyncSession]:
    """One transaction per request, committed here and nowhere else."""
    from api.db import get_sessionmaker

    session = get_sessionmaker()()
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        await session.close()
    await run_after_commit(session)


# scope="function": the commit happens before the response is sent (with the default scope,
# FastAPI finishes yield dependencies after responding, so a failed commit would answer 200).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def current_analyst(
    session: SessionDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Analyst:
    if not token:
        raise AuthenticationRequired("Autenticação necessária.")
    analyst_id = read_token(token)
    analyst = await session.get(Analyst, analyst_id) if analyst_id is not None else None
    if analyst is None or not analyst.active:
        raise AuthenticationRequired("Sessão inválida ou expirada.")
    return analyst


CurrentAnalyst = Annotated[Analyst, Depends(current_analyst)]


def require_role(role: Role) -> Callable[[Analyst], Coroutine[Any, Any, Analyst]]:
    async def check(analyst: CurrentAnalyst) -> Analyst:
        if not analyst.has_role(role):
            raise PermissionDenied(f"Esta ação exige o papel {role}.")
        return analyst

    return check
