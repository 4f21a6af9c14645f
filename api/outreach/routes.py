"""HTTP API for notices and bulk sends (`/api/v1/outreach`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from api.errors import Conflict, NotFound
from api.handoff.service import analyst_actor
from api.outreach.schemas import (
    BatchOut,
    BatchReportOut,
    ItemOut,
    NoticeRequest,
    OptInIn,
    OptInOut,
    PreviewOut,
)
from api.outreach.service import (
    do_cancel_batch,
    do_create_batch,
    do_record_opt_in,
    get_case_ids,
    get_existing_ids,
    get_previews,
    parse_channel,
    request_key,
)
from api.outreach.views import (
    BatchProgress,
    get_batch_progress,
    get_batch_report,
    get_recent_batches,
)
from api.web.deps import CurrentAnalyst, SessionDep
from api.web.params import PathId

router = APIRouter(prefix="/api/v1/outreach", tags=["outreach"])


def _batch_out(progress: BatchProgress) -> BatchOut:
    return BatchOut(
        id=progress.id,
        channel=progress.channel,
        state=progress.state,
        actor_name=progress.actor_name,
        selection=progress.selection,
        created_at=progress.created_at,
        finished_at=progress.finished_at,
        total=progress.total,
        sent=progress.sent,
        skipped=progress.skipped,
        failed=progress.failed,
        pending=progress.pending,
        percent=progress.percent,
        next_at=progress.next_at,
    )


@router.post("/notices", status_code=202, response_model=None)
async def send_notices(
    session: SessionDep,
    analyst: CurrentAnalyst,
    body: NoticeRequest,
    response: Response,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> BatchOut | list[PreviewOut]:
    """Queue the extrajudicial notice for a selection (sent inside business hours, within the
    channel's rate limit, once per case); `dry_run` answers what would happen per case."""
    channel = parse_channel(body.channel)
    case_ids = await get_case_ids(
        session, brand_id=body.brand_id, status=body.status, among=body.case_ids or None
    )
    selection: dict[str, object] = {
        "case_ids": list(body.case_ids) or None,
        "brand_id": body.brand_id,
        "status": str(body.status) if body.status else None,
    }
    if body.case_ids:
        missing = sorted(set(body.case_ids) - set(await get_existing_ids(session, body.case_ids)))
        if missing:
            raise NotFound(
                f"Casos não encontrados: {', '.join(str(i) for i in missing[:20])}.",
                missing=missing,
            )
    if not case_ids:
        raise Conflict("Nenhum caso nessa seleção.")
    if body.dry_run:
        response.status_code = 200
        previews = await get_previews(session, case_ids=case_ids, channel=channel)
        return [PreviewOut(**p.__dict__) for p in previews]
    batch = await do_create_batch(
        session,
        case_ids=case_ids,
        channel=channel,
        actor=analyst_actor(analyst),
        selection=selection,
        request_key=request_key(analyst.id, idempotency_key),
    )
    progress = await get_batch_progress(session, batch_id=batch.id)
    assert progress is not None
    return _batch_out(progress)


@router.get("/batches")
async def list_batches(session: SessionDep, _analyst: CurrentAnalyst) -> list[BatchOut]:
    return [_batch_out(p) for p in await get_recent_batches(session, limit=50)]


@router.get("/batches/{batch_id}")
async def get_batch(
    session: SessionDep, _analyst: CurrentAnalyst, batch_id: PathId
) -> BatchReportOut:
    """Progress and the per-case report: sent (address, Message-ID) or skipped and why."""
    progress = await get_batch_progress(session, batch_id=batch_id)
    if progress is None:
        raise NotFound(f"Lote {batch_id} não encontrado.")
    items = await get_batch_report(session, batch_id=batch_id)
    return BatchReportOut(
        **_batch_out(progress).model_dump(),
        items=[ItemOut(**item.__dict__) for item in items],
    )


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(session: SessionDep, analyst: CurrentAnalyst, batch_id: PathId) -> BatchOut:
    await do_cancel_batch(session, batch_id=batch_id, analyst=analyst)
    await session.flush()
    progress = await get_batch_progress(session, batch_id=batch_id)
    assert progress is not None
    return _batch_out(progress)


@router.post("/opt-ins", status_code=201)
async def record_opt_in(session: SessionDep, analyst: CurrentAnalyst, body: OptInIn) -> OptInOut:
    """Record that a phone agreed to receive WhatsApp messages from us (the notice by WhatsApp
    goes only to such phones)."""
    opt_in = await do_record_opt_in(
        session, phone=body.phone, source=body.source, analyst_id=analyst.id
    )
    return OptInOut(
        id=opt_in.id,
        contact_point_id=opt_in.contact_point_id,
        source=opt_in.source,
        created_at=opt_in.created_at,
    )
