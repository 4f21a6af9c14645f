"""Panel: send the extrajudicial notice (one case, or every case of a brand/status), the dry
run, and each batch's live progress and per-case report (`/painel/disparos`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.cases.lifecycle import CaseStatus
from api.errors import NotFound, ValidationFailed
from api.handoff.service import analyst_actor
from api.outreach.service import (
    REASONS,
    do_cancel_batch,
    do_create_batch,
    do_record_opt_in,
    get_case_ids,
    get_previews,
    parse_channel,
)
from api.outreach.views import (
    get_batch_progress,
    get_batch_report,
    get_brand_choices,
    get_case_id_by_reference,
    get_recent_batches,
)
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Disparos", "/disparos", None, 40))

STATE_LABELS = {"sent": "Enviado", "skipped": "Pulado", "failed": "Falhou", "pending": "Na fila"}
BATCH_LABELS = {"queued": "Em andamento", "done": "Concluído", "cancelled": "Cancelado"}
CHANNELS = (("email", "E-mail (com PDF)"), ("whatsapp", "WhatsApp (modelo aprovado, opt-in)"))


def _context() -> dict[str, object]:
    return {"state_labels": STATE_LABELS, "batch_labels": BATCH_LABELS, "channels": CHANNELS}


@router.get("/disparos")
async def outreach_page(
    request: Request, session: DbSession, analyst: PanelAnalyst
) -> HTMLResponse:
    return render_page(
        request,
        "disparos.html",
        {
            **_context(),
            "batches": await get_recent_batches(session, limit=30),
            "brands": await get_brand_choices(session),
            "statuses": [CaseStatus.APTO_NOTIFICAR, CaseStatus.REABERTO],
            "opt_in_recorded": request.query_params.get("opt_in") == "ok",
        },
        analyst=analyst,
    )


@router.post("/disparos", response_model=None)
async def start_outreach(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    canal: Annotated[str, Form(max_length=16)] = "email",
    caso: Annotated[str, Form(max_length=40)] = "",
    marca: Annotated[str, Form(max_length=12)] = "",
    status: Annotated[str, Form(max_length=40)] = "",
    simular: Annotated[str, Form(max_length=4)] = "",
) -> Response:
    """One case (by reference) or a brand's cases in a status; `simular` shows the dry run."""
    channel = parse_channel(canal)
    selection: dict[str, object]
    if caso.strip():
        case_id = await get_case_id_by_reference(session, reference=caso)
        if case_id is None:
            raise NotFound(f"Caso {caso.strip()} não encontrado.")
        case_ids, selection = [case_id], {"case_refs": [caso.strip().upper()]}
    else:
        try:
            brand_id = int(marca) if marca.strip() else None
            case_status = CaseStatus(status) if status.strip() else None
        except ValueError as exc:
            raise ValidationFailed("Marca ou status inválido.") from exc
        case_ids = await get_case_ids(session, brand_id=brand_id, status=case_status)
        selection = {"brand_id": brand_id, "status": case_status and str(case_status)}
        if not case_ids:
            raise ValidationFailed("Nenhum caso nessa seleção.")
    if simular:
        previews = await get_previews(session, case_ids=case_ids, channel=channel)
        return render_page(
            request,
            "disparo_previa.html",
            {
                **_context(),
                "previews": previews,
                "channel": str(channel),
                "caso": caso.strip(),
                "marca": marca.strip(),
                "status": status.strip(),
                "reasons": REASONS,
            },
            analyst=analyst,
        )
    batch = await do_create_batch(
        session,
        case_ids=case_ids,
        channel=channel,
        actor=analyst_actor(analyst),
        selection=selection,
    )
    return redirect(f"{PANEL_PREFIX}/disparos/{batch.id}")


@router.post("/casos/{case_id}/notificar")
async def notify_case(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    canal: Annotated[str, Form(max_length=16)] = "email",
) -> Response:
    """The notice for one case, from its page."""
    batch = await do_create_batch(
        session,
        case_ids=[case_id],
        channel=parse_channel(canal),
        actor=analyst_actor(analyst),
    )
    return redirect(f"{PANEL_PREFIX}/disparos/{batch.id}")


async def _batch_context(session: DbSession, batch_id: int) -> dict[str, object]:
    progress = await get_batch_progress(session, batch_id=batch_id)
    if progress is None:
        raise NotFound(f"Lote {batch_id} não encontrado.")
    return {
        **_context(),
        "batch": progress,
        "items": await get_batch_report(session, batch_id=batch_id),
    }


@router.get("/disparos/{batch_id}")
async def batch_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, batch_id: PathId
) -> HTMLResponse:
    return render_page(
        request, "disparo.html", await _batch_context(session, batch_id), analyst=analyst
    )


@router.get("/disparos/{batch_id}/progresso")
async def batch_progress(
    request: Request, session: DbSession, analyst: PanelAnalyst, batch_id: PathId
) -> HTMLResponse:
    """The progress fragment the batch page polls while the batch runs."""
    return render_page(
        request, "disparo_progresso.html", await _batch_context(session, batch_id), analyst=analyst
    )


@router.post("/disparos/opt-in")
async def record_opt_in(
    session: DbSession,
    analyst: PanelWriter,
    telefone: Annotated[str, Form(max_length=40)] = "",
    origem: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """A phone agreed to receive WhatsApp messages from us (what a WhatsApp notice needs)."""
    await do_record_opt_in(session, phone=telefone, source=origem, analyst_id=analyst.id)
    return redirect(f"{PANEL_PREFIX}/disparos?opt_in=ok")


@router.post("/disparos/{batch_id}/cancelar")
async def cancel_batch(session: DbSession, analyst: PanelWriter, batch_id: PathId) -> Response:
    await do_cancel_batch(session, batch_id=batch_id, analyst=analyst)
    return redirect(f"{PANEL_PREFIX}/disparos/{batch_id}")
