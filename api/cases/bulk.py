"""Bulk actions on a selection of cases from the cases list: move status, assign the
responsible analyst. Each case is done in its own savepoint, so one refused case (an illegal
move) does not undo the others; the caller gets what was done and what was refused, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import do_change_status
from api.errors import AppError, NotFound, ValidationFailed
from api.operations.ownership import do_assign_case
from api.timeline.service import Actor

MAX_SELECTION = 500


@dataclass
class BulkResult:
    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{len(self.done)} caso(s) atualizado(s)"
        if self.refused:
            reasons = "; ".join(f"{ref}: {why}" for ref, why in self.refused[:5])
            more = f" (+{len(self.refused) - 5})" if len(self.refused) > 5 else ""
            text += f"; {len(self.refused)} recusado(s) — {reasons}{more}"
        return text + "."


async def _selected(session: AsyncSession, case_ids: Sequence[int]) -> list[Case]:
    if not case_ids:
        raise ValidationFailed("Selecione ao menos um caso.")
    if len(case_ids) > MAX_SELECTION:
        raise ValidationFailed(f"Selecione no máximo {MAX_SELECTION} casos por vez.")
    cases = list(
        await session.scalars(sa.select(Case).where(Case.id.in_(list(case_ids))).order_by(Case.id))
    )
    if not cases:
        raise NotFound("Nenhum dos casos selecionados existe.")
    return cases


async def do_bulk_change_status(
    session: AsyncSession,
    *,
    case_ids: Sequence[int],
    target: CaseStatus,
    actor: Actor,
    reason: str | None,
) -> BulkResult:
    result = BulkResult()
    for case in await _selected(session, case_ids):
        try:
            async with session.begin_nested():
                await do_change_status(
                    session, case=case, target=target, actor=actor, reason=reason
                )
        except AppError as exc:
            result.refused.append((case.reference, exc.message))
        else:
            result.done.append(case.reference)
    return result


async def do_bulk_assign(
    session: AsyncSession,
    *,
    case_ids: Sequence[int],
    assignee: Analyst | None,
    analyst: Analyst,
) -> BulkResult:
    """Make `assignee` (None: nobody) responsible for each selected case, through the
    operations' ownership service (a supervisor's act; the case's open alerts follow)."""
    result = BulkResult()
    target_id = assignee.id if assignee is not None else None
    for case in await _selected(session, case_ids):
        try:
            async with session.begin_nested():
                await do_assign_case(session, case_id=case.id, analyst_id=target_id, by=analyst)
        except AppError as exc:
            result.refused.append((case.reference, exc.message))
        else:
            result.done.append(case.reference)
    return result
