"""Read endpoints for cases: list with filters and pagination, detail, timeline."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.cases.lifecycle import CaseStatus, allowed_moves
from api.cases.models import Case
from api.cases.schemas import CaseDetailOut, CaseOut, CasePage, TimelineEntryOut
from api.cases.service import CaseFilters, get_all_cases, get_case_by_reference, require_case
from api.errors import NotFound
from api.timeline.service import get_case_timeline
from api.web.deps import CurrentAnalyst, SessionDep
from api.web.params import AfterId, Page, PathId, QueryId

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


@router.get("")
async def list_cases(
    session: SessionDep,
    _analyst: CurrentAnalyst,
    status: CaseStatus | None = None,
    brand_id: QueryId = None,
    q: Annotated[
        str | None, Query(max_length=100, description="Reference, name or document")
    ] = None,
    page: Page = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CasePage:
    items, total = await get_all_cases(
        session,
        filters=CaseFilters(status=status, brand_id=brand_id, search=q),
        offset=(page - 1) * page_size,
        limit=page_size,
    )
    return CasePage(
        items=[CaseOut.model_validate(c) for c in items],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/by-reference/{reference}")
async def get_by_reference(
    session: SessionDep, _analyst: CurrentAnalyst, reference: str
) -> CaseDetailOut:
    case = await get_case_by_reference(session, reference=reference)
    if case is None:
        raise NotFound(f"Caso {reference} não encontrado.")
    return case_detail(case)


@router.get("/{case_id}")
async def get_case_detail(
    session: SessionDep, _analyst: CurrentAnalyst, case_id: PathId
) -> CaseDetailOut:
    return case_detail(await require_case(session, case_id=case_id))


@router.get("/{case_id}/timeline")
async def get_timeline(
    session: SessionDep,
    _analyst: CurrentAnalyst,
    case_id: PathId,
    after_id: AfterId = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> list[TimelineEntryOut]:
    await require_case(session, case_id=case_id)
    entries = await get_case_timeline(session, case_id=case_id, after_id=after_id, limit=limit)
    return [TimelineEntryOut.model_validate(e) for e in entries]


def case_detail(case: Case) -> CaseDetailOut:
    return CaseDetailOut(
        **CaseOut.model_validate(case).model_dump(),
        allowed_moves=sorted(allowed_moves(case.status)),
        close_reason=case.close_reason,
    )
