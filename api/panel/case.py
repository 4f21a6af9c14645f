"""The case page: status, responsible analyst, follow-up day, tags, listings (with who checked
their removal), payments and installments (an installment marked paid by hand), conversations
(and starting one with any of the infringer's addresses), recent timeline; status moves and
notes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.cases.models import ListingStatus
from api.cases.service import do_change_status, require_case
from api.cases.views import get_case_view
from api.cases.workspace import (
    do_set_case_follow_up,
    do_set_case_tags,
    do_start_conversation,
    do_verify_listing,
)
from api.config import get_settings
from api.errors import ValidationFailed
from api.handoff.service import analyst_actor, do_add_note
from api.operations.ownership import do_assign_case
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import LISTING_LABELS, MAX_TEXT, redirect, render_page
from api.payments.installments import do_mark_installment_paid
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


@router.get("/casos/{case_id}")
async def case_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, case_id: PathId
) -> HTMLResponse:
    view = await get_case_view(
        session, case_id=case_id, with_analysts=analyst.has_role(Role.SUPERVISOR)
    )
    return render_page(
        request,
        "caso.html",
        {
            "case": view.case,
            "moves": view.moves,
            "payments": view.payments,
            "conversations": view.conversations,
            "entries": view.entries,
            "public_base_url": get_settings().public_base_url.rstrip("/"),
            "tags": view.tags,
            "contacts": view.contacts,
            "listing_checks": view.listing_checks,
            "assignee": view.assignee,
            "analysts": view.analysts,
            "can_assign": view.can_assign,
            "is_supervisor": analyst.has_role(Role.SUPERVISOR),
            "LISTING_CHOICES": [(s.value, LISTING_LABELS[s]) for s in ListingStatus],
        },
        analyst=analyst,
    )


@router.post("/casos/{case_id}/status")
async def change_case_status(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    status: Annotated[str, Form(max_length=40)],
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        target = CaseStatus(status)
    except ValueError as exc:
        raise ValidationFailed(f"Status desconhecido: {status!r}.") from exc
    case = await require_case(session, case_id=case_id)
    await do_change_status(
        session,
        case=case,
        target=target,
        actor=analyst_actor(analyst),
        reason=motivo.strip() or None,
    )
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")


@router.post("/casos/{case_id}/notas")
async def add_case_note(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    case = await require_case(session, case_id=case_id)
    await do_add_note(session, analyst=analyst, text=texto, case=case)
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")


def _back(case_id: int) -> Response:
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")


@router.post("/casos/{case_id}/etiquetas")
async def set_case_tags(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    etiquetas: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    case = await require_case(session, case_id=case_id)
    await do_set_case_tags(session, case=case, raw=etiquetas, actor=analyst_actor(analyst))
    return _back(case_id)


@router.post("/casos/{case_id}/acompanhamento")
async def set_case_follow_up(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    data: Annotated[str, Form(max_length=10)] = "",
) -> Response:
    try:
        day = dt.date.fromisoformat(data) if data else None
    except ValueError as exc:
        raise ValidationFailed(f"Data inválida: {data!r}.") from exc
    case = await require_case(session, case_id=case_id)
    await do_set_case_follow_up(session, case=case, day=day, actor=analyst_actor(analyst))
    return _back(case_id)


@router.post("/casos/{case_id}/responsavel")
async def set_case_assignee(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    responsavel: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    target_id = int(responsavel) if responsavel.isdigit() else None
    await do_assign_case(session, case_id=case_id, analyst_id=target_id, by=analyst)
    return _back(case_id)


@router.post("/casos/{case_id}/conversas")
async def start_conversation(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    contato: Annotated[int, Form(ge=1, le=2**31 - 1)],
) -> Response:
    case = await require_case(session, case_id=case_id)
    conversation = await do_start_conversation(
        session, case=case, contact_id=contato, analyst=analyst
    )
    return redirect(f"{PANEL_PREFIX}/conversas/{conversation.id}")


@router.post("/casos/{case_id}/parcelas/{installment_id}/paga")
async def mark_installment_paid(
    session: DbSession, analyst: PanelWriter, case_id: PathId, installment_id: PathId
) -> Response:
    await do_mark_installment_paid(
        session, case_id=case_id, installment_id=installment_id, analyst=analyst
    )
    return _back(case_id)


@router.post("/casos/{case_id}/anuncios/{listing_id}")
async def verify_listing(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    listing_id: PathId,
    situacao: Annotated[str, Form(max_length=20)],
    nota: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """An analyst records what they saw on the marketplace (removed, still active, relisted)."""
    await do_verify_listing(
        session,
        case_id=case_id,
        listing_id=listing_id,
        status=situacao,
        actor=analyst_actor(analyst),
        note=nota,
    )
    return _back(case_id)
