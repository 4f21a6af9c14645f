"""Creating analysts and checking their credentials."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.analysts.passwords import hash_password, verify_password
from api.analysts.sessions import do_revoke_all_sessions
from api.analysts.throttle import get_login_throttle
from api.errors import AuthenticationRequired, Conflict, NotFound, ValidationFailed
from api.identifiers.contact import normalize_email
from api.identifiers.errors import InvalidIdentifier

MIN_PASSWORD_LENGTH = 8


async def get_analyst_by_email(session: AsyncSession, *, email: str) -> Analyst | None:
    return await session.scalar(sa.select(Analyst).where(Analyst.email == email.strip().lower()))


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"A senha precisa de pelo menos {MIN_PASSWORD_LENGTH} caracteres.")


async def create_analyst(
    session: AsyncSession, *, email: str, password: str, role: Role, name: str | None = None
) -> Analyst:
    try:
        address = normalize_email(email)
    except InvalidIdentifier as exc:
        raise ValidationFailed(f"E-mail inválido: {email!r}.") from exc
    check_password_strength(password)
    if await get_analyst_by_email(session, email=address) is not None:
        raise Conflict(f"Já existe um usuário com o e-mail {address}.")
    analyst = Analyst(
        email=address,
        name=name or address.split("@")[0].replace(".", " ").title(),
        role=role,
        password_hash=hash_password(password),
    )
    session.add(analyst)
    await session.flush()
    return analyst


async def do_authenticate(session: AsyncSession, *, email: str, password: str) -> Analyst | None:
    """The active analyst with these credentials, or None (same cost either way)."""
    analyst = await get_analyst_by_email(session, email=email)
    ok = verify_password(analyst.password_hash if analyst else None, password)
    return analyst if ok and analyst is not None and analyst.active else None


async def do_login(session: AsyncSession, *, email: str, password: str, address: str) -> Analyst:
    """Check credentials within the login limits (per account and per client address).

    Raises LoginThrottled (429) when a limit is used up and AuthenticationRequired on wrong
    credentials; the caller must still commit after AuthenticationRequired, or the failure is
    not counted by the database store (answer the 401 without raising).
    """
    throttle = get_login_throttle()
    attempt = await throttle.begin(session, email=email, address=address)
    analyst = await do_authenticate(session, email=email, password=password)
    if analyst is None:
        raise AuthenticationRequired("E-mail ou senha incorretos.")
    await throttle.succeeded(session, attempt)
    return analyst


async def require_analyst_by_email(session: AsyncSession, *, email: str) -> Analyst:
    """The account with this e-mail, or NotFound."""
    analyst = await get_analyst_by_email(session, email=email)
    if analyst is None:
        raise NotFound(f"Nenhum usuário com o e-mail {email.strip().lower()}.")
    return analyst


async def do_set_password(session: AsyncSession, *, analyst: Analyst, password: str) -> int:
    """Set a new password and end every session of the analyst; how many were ended."""
    check_password_strength(password)
    analyst.password_hash = hash_password(password)
    await session.flush()
    return await do_revoke_all_sessions(session, analyst_id=analyst.id)


async def do_deactivate(session: AsyncSession, *, analyst: Analyst) -> int:
    """Lock the account out and end every session of it; how many were ended."""
    analyst.active = False
    await session.flush()
    return await do_revoke_all_sessions(session, analyst_id=analyst.id)
