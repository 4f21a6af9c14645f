"""Account administration for the panel's users screen: list, create, change role, deactivate
and reactivate (deactivation ends every open session at once, api/analysts/sessions.py)."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.analysts.service import create_analyst, do_deactivate
from api.errors import Conflict, NotFound, PermissionDenied, ValidationFailed


def check_can_admin_users(actor: Analyst) -> None:
    if not actor.has_role(Role.ADMIN):
        raise PermissionDenied("Somente administradores gerenciam usuários.")


async def get_analysts(session: AsyncSession, *, active_only: bool = False) -> Sequence[Analyst]:
    query = sa.select(Analyst).order_by(Analyst.active.desc(), Analyst.name)
    if active_only:
        query = query.where(Analyst.active.is_(True))
    return (await session.scalars(query)).all()


async def require_analyst(session: AsyncSession, *, analyst_id: int) -> Analyst:
    analyst = await session.get(Analyst, analyst_id)
    if analyst is None:
        raise NotFound(f"Usuário {analyst_id} não encontrado.")
    return analyst


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError as exc:
        raise ValidationFailed(f"Papel desconhecido: {value!r}.") from exc


async def do_create_user(
    session: AsyncSession, *, actor: Analyst, email: str, name: str, role: Role, password: str
) -> Analyst:
    check_can_admin_users(actor)
    if not name.strip():
        raise ValidationFailed("Informe o nome.")
    return await create_analyst(
        session, email=email, password=password, role=role, name=" ".join(name.split())
    )


async def _other_active_admins(session: AsyncSession, analyst: Analyst) -> int:
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(Analyst)
        .where(Analyst.role == Role.ADMIN, Analyst.active.is_(True), Analyst.id != analyst.id)
    )
    return int(count or 0)


async def do_change_role(
    session: AsyncSession, *, actor: Analyst, analyst_id: int, role: Role
) -> Analyst:
    check_can_admin_users(actor)
    analyst = await require_analyst(session, analyst_id=analyst_id)
    demoting = analyst.role is Role.ADMIN and role is not Role.ADMIN
    if demoting and await _other_active_admins(session, analyst) == 0:
        raise Conflict("Não é possível rebaixar o último administrador ativo.")
    analyst.role = role
    await session.flush()
    return analyst


async def do_deactivate_user(session: AsyncSession, *, actor: Analyst, analyst_id: int) -> int:
    """Deactivate an account and end its open sessions; how many sessions were ended."""
    check_can_admin_users(actor)
    analyst = await require_analyst(session, analyst_id=analyst_id)
    if analyst.id == actor.id:
        raise Conflict("Você não pode desativar a própria conta.")
    if not analyst.active:
        raise Conflict("Esta conta já está desativada.")
    return await do_deactivate(session, analyst=analyst)


async def do_reactivate_user(session: AsyncSession, *, actor: Analyst, analyst_id: int) -> Analyst:
    check_can_admin_users(actor)
    analyst = await require_analyst(session, analyst_id=analyst_id)
    analyst.active = True
    await session.flush()
    return analyst
