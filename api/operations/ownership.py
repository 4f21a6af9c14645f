"""Who is responsible for a case: assigned on import (the brand's default analyst, else
round-robin among active analysts), reassigned by supervisors. Alerts follow the owner."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.brands.models import Brand
from api.cases.models import Case
from api.db import utcnow
from api.errors import NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events.kinds import CaseAssigned
from api.operations.models import Alert, BrandDefaultAnalyst, OperationsSetting
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry

ROUND_ROBIN_KEY = "round_robin"


async def _active_analyst(session: AsyncSession, analyst_id: int) -> Analyst:
    analyst = await session.get(Analyst, analyst_id)
    if analyst is None or not analyst.active:
        raise ValidationFailed("Analista inexistente ou inativo.")
    return analyst


async def get_brand_default_analyst(session: AsyncSession, *, brand_id: int) -> int | None:
    return await session.scalar(
        sa.select(BrandDefaultAnalyst.analyst_id).where(BrandDefaultAnalyst.brand_id == brand_id)
    )


async def do_set_brand_default_analyst(
    session: AsyncSession, *, brand_id: int, analyst_id: int | None, by: Analyst
) -> None:
    """The analyst new cases of the brand go to (None: round-robin)."""
    check_can_assign(by)
    if await session.get(Brand, brand_id) is None:
        raise NotFound("Marca não encontrada.")
    row = await session.get(BrandDefaultAnalyst, brand_id)
    if analyst_id is None:
        if row is not None:
            await session.delete(row)
    else:
        await _active_analyst(session, analyst_id)
        if row is None:
            session.add(BrandDefaultAnalyst(brand_id=brand_id, analyst_id=analyst_id))
        else:
            row.analyst_id = analyst_id
    await session.flush()


async def _next_round_robin(session: AsyncSession) -> int | None:
    """The active analyst after the last one given a case (in id order, wrapping)."""
    candidates = list(
        await session.scalars(
            sa.select(Analyst.id)
            .where(Analyst.active.is_(True), Analyst.role == Role.ANALYST)
            .order_by(Analyst.id)
        )
    )
    if not candidates:
        return None
    row = await session.get(OperationsSetting, ROUND_ROBIN_KEY, with_for_update=True)
    if row is None:
        row = OperationsSetting(key=ROUND_ROBIN_KEY, value={"last": 0}, updated_at=utcnow())
        session.add(row)
    last = int((row.value or {}).get("last") or 0)
    chosen = next((c for c in candidates if c > last), candidates[0])
    row.value = {"last": chosen}
    row.updated_at = utcnow()
    await session.flush()
    return chosen


async def do_assign_on_import(session: AsyncSession, *, case: Case) -> int | None:
    """Give a new case its responsible analyst; returns the analyst id (None: nobody active)."""
    if case.assignee_id is not None:
        return case.assignee_id
    how = "brand_default"
    chosen = await get_brand_default_analyst(session, brand_id=case.brand_id)
    if chosen is not None:
        analyst = await session.get(Analyst, chosen)
        if analyst is None or not analyst.active:
            chosen = None
    if chosen is None:
        how = "round_robin"
        chosen = await _next_round_robin(session)
    if chosen is None:
        return None
    await _record_assignment(session, case=case, analyst_id=chosen, how=how, actor=Actor.system())
    return chosen


def check_can_assign(analyst: Analyst) -> None:
    if not analyst.has_role(Role.SUPERVISOR):
        raise PermissionDenied("Só supervisores atribuem responsáveis.")


async def do_assign_case(
    session: AsyncSession, *, case_id: int, analyst_id: int | None, by: Analyst
) -> Case:
    """A supervisor makes `analyst_id` (None: nobody) responsible for the case (an analyst
    may take a case nobody owns); its open alerts move to the new owner."""
    case = await session.scalar(
        sa.select(Case).where(Case.id == case_id).with_for_update(of=Case.__table__)
    )
    if case is None:
        raise NotFound("Caso não encontrado.")
    taking_unowned = analyst_id == by.id and case.assignee_id is None
    if not taking_unowned:
        check_can_assign(by)  # an analyst may only take a case nobody owns
    if analyst_id is not None:
        await _active_analyst(session, analyst_id)
    if case.assignee_id == analyst_id:
        return case
    await _record_assignment(
        session,
        case=case,
        analyst_id=analyst_id,
        how="manual",
        actor=Actor(ActorKind.ANALYST, by.id, by.name),
    )
    values: dict[str, Any] = {"recipient_id": analyst_id}
    if analyst_id is None:
        values["to_supervisors"] = True  # unassigned: supervisors see it
    await session.execute(
        sa.update(Alert).where(Alert.case_id == case.id, Alert.state != "resolved").values(values)
    )
    return case


async def _record_assignment(
    session: AsyncSession, *, case: Case, analyst_id: int | None, how: str, actor: Actor
) -> None:
    previous = case.assignee_id
    case.assignee_id = analyst_id
    case.updated_at = utcnow()
    names = await _names(session, [i for i in (previous, analyst_id) if i is not None])
    new_name = names.get(analyst_id, "ninguém") if analyst_id is not None else "ninguém"
    how_text = {
        "brand_default": " (responsável padrão da marca)",
        "round_robin": " (rodízio)",
    }.get(how, f" por {actor.name}" if actor.name else "")
    summary = f"Responsável pelo caso: {new_name}{how_text}."
    if previous is not None:
        summary = f"Responsável pelo caso: {names.get(previous, '?')} → {new_name}{how_text}."
    data: dict[str, Any] = {"assignee_id": analyst_id, "previous_assignee_id": previous, "how": how}
    await create_entry(
        session, kind=EntryKind.SYSTEM, actor=actor, case_id=case.id, summary=summary, data=data
    )
    emit(
        session,
        CaseAssigned(
            **about(actor=actor, case_id=case.id),
            analyst_id=analyst_id,
            previous_analyst_id=previous,
            how=how,
        ),
    )
    await session.flush()


async def _names(session: AsyncSession, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(sa.select(Analyst.id, Analyst.name).where(Analyst.id.in_(ids)))
    return {row.id: row.name for row in rows}
