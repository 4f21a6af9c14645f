"""Creating analysts and checking their credentials."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.analysts.passwords import hash_password, verify_password
from api.errors import Conflict, ValidationFailed
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
