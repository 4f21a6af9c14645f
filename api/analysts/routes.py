"""`POST /api/v1/auth/token` (OAuth2 password flow) and `GET /api/v1/me`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import BaseModel

from api.analysts.models import Role
from api.analysts.service import do_authenticate
from api.errors import AuthenticationRequired
from api.web.deps import CurrentAnalyst, SessionDep
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


@router.post("/auth/token")
async def issue_token(
    session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    analyst = await do_authenticate(session, email=form.username, password=form.password)
    if analyst is None:
        raise AuthenticationRequired("E-mail ou senha incorretos.")
    return TokenOut(access_token=create_token(analyst.id))


@router.get("/me")
async def me(analyst: CurrentAnalyst) -> AnalystOut:
    return AnalystOut(id=analyst.id, email=analyst.email, name=analyst.name, role=analyst.role)
