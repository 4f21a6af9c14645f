"""`/notificacao/{token}` and `/pagamento/{token}`: public pages reached through links we sent."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import joinedload, selectinload

from api.assistant.context import load_case
from api.cases.models import Case, ListingStatus
from api.config import get_settings
from api.conversations.models import Attachment, Direction, Message
from api.errors import NotFound
from api.identifiers.documents import parse_document
from api.identifiers.money import format_brl
from api.payments.models import InstallmentStatus
from api.payments.service import get_payment_request_by_token, installments_of
from api.storage import get_blob
from api.web.deps import SessionDep
from api.web.security import FILE_CSP, apply_security_headers, content_disposition

router = APIRouter(tags=["public"], include_in_schema=False)
TEMPLATES_DIR = Path(__file__).parent / "templates"
templates = Jinja2Templates(directory=TEMPLATES_DIR)
# The pages' only style sheet, served from our origin: the CSP allows no inline style.
STYLESHEET = (TEMPLATES_DIR / "public.css").read_text(encoding="utf-8")

LISTING_STATUS_PT = {
    ListingStatus.ACTIVE: "ativo",
    ListingStatus.REMOVAL_PENDING: "remoção informada, em verificação",
    ListingStatus.REMOVED: "removido",
    ListingStatus.RELISTED: "republicado",
}
INSTALLMENT_STATUS_PT = {
    InstallmentStatus.OPEN: "em aberto",
    InstallmentStatus.PAID: "paga",
    InstallmentStatus.OVERDUE: "vencida",
    InstallmentStatus.CANCELLED: "cancelada",
}


def _firm() -> dict[str, str]:
    s = get_settings()
    return {
        "firm_name": s.firm_name,
        "firm_site": s.firm_site,
        "firm_phone": s.firm_phone,
        "firm_email": s.firm_email,
    }


@router.get("/notificacao/{token}", response_class=HTMLResponse)
async def notice_page(request: Request, session: SessionDep, token: str) -> HTMLResponse:
    case = await session.scalar(
        sa.select(Case)
        .where(Case.notice_token == token)
        .options(joinedload(Case.brand), joinedload(Case.infringer), selectinload(Case.listings))
    )
    if case is None:
        raise NotFound("Notificação não encontrada.")
    document = parse_document(case.infringer.document).formatted if case.infringer.document else ""
    page = templates.TemplateResponse(
        request,
        "notice.html",
        {
            "case": case,
            "document": document,
            "notice_date": case.notice_sent_at.strftime("%d/%m/%Y") if case.notice_sent_at else "—",
            "deadline": case.response_deadline.strftime("%d/%m/%Y")
            if case.response_deadline
            else "—",
            "listing_status": LISTING_STATUS_PT,
            **_firm(),
        },
    )
    return apply_security_headers(page)


@router.get("/publico/estilo.css")
async def stylesheet() -> Response:
    return Response(
        STYLESHEET,
        media_type="text/css",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"},
    )


@router.get("/media/{sha256}")
async def outbound_media(session: SessionDep, sha256: str) -> Response:
    """A file we sent, fetched by the provider (Twilio downloads MediaUrl). Only attachments of
    outbound messages are served; the hash is the unguessable name."""
    attachment = await session.scalar(
        sa.select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(
            Attachment.sha256 == sha256,
            Message.direction == Direction.OUTBOUND,
            Attachment.storage_path.is_not(None),
        )
        .limit(1)
    )
    data = get_blob(sha256) if attachment is not None else None
    if attachment is None or data is None:
        raise NotFound("Arquivo não encontrado.")
    return Response(
        data,
        media_type=attachment.content_type,
        headers={
            "Content-Disposition": content_disposition("attachment", attachment.filename),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/pagamento/{token}", response_class=HTMLResponse)
async def payment_page(request: Request, session: SessionDep, token: str) -> HTMLResponse:
    payment = await get_payment_request_by_token(session, token=token)
    if payment is None:
        raise NotFound("Pagamento não encontrado.")
    case = await load_case(session, payment.case_id)
    assert case is not None
    page = templates.TemplateResponse(
        request,
        "payment.html",
        {
            "case": case,
            "payment": payment,
            "installments": installments_of(payment),
            "total": format_brl(payment.total_amount),
            "payee": case.brand.payee_name or get_settings().firm_name,
            "superseded": payment.superseded_at is not None,
            "installment_status": INSTALLMENT_STATUS_PT,
            "brl": format_brl,
            **_firm(),
        },
    )
    return apply_security_headers(page)
