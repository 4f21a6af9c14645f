"""Issuing payment requests (split into installments) and reading them back."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from decimal import ROUND_DOWN, Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.brands.models import Brand
from api.cases.models import Case
from api.db import utcnow
from api.errors import ValidationFailed
from api.events import about, emit
from api.events import kinds as ev
from api.identifiers.money import format_brl
from api.payments.models import Installment, InstallmentStatus, PaymentRequest
from api.payments.provider import PaymentProvider
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

FIRST_DUE_IN_DAYS = 3
DAYS_BETWEEN_INSTALLMENTS = 30


def split_amount(total: Decimal, count: int) -> list[Decimal]:
    """Equal installments in whole cents; the first absorbs the remainder."""
    if count < 1:
        raise ValidationFailed("O número de parcelas deve ser pelo menos 1.")
    part = (total / count).quantize(Decimal("0.01"), rounding=ROUND_DOWN)
    parts = [part] * count
    parts[0] += total - part * count
    return parts


async def get_payment_request_by_token(
    session: AsyncSession, *, token: str
) -> PaymentRequest | None:
    return await session.scalar(
        sa.select(PaymentRequest)
        .where(PaymentRequest.public_token == token)
        .options(selectinload(PaymentRequest.installments))
    )


async def get_current_payment_request(
    session: AsyncSession, *, case_id: int
) -> PaymentRequest | None:
    return await session.scalar(
        sa.select(PaymentRequest)
        .where(PaymentRequest.case_id == case_id, PaymentRequest.superseded_at.is_(None))
        .order_by(PaymentRequest.id.desc())
        .limit(1)
    )


def states_terms(request: PaymentRequest, *, amount: Decimal, installments: int) -> bool:
    """Whether a payment request asks for exactly these terms."""
    return request.total_amount == amount and request.installments_count == installments


def has_payments(request: PaymentRequest) -> bool:
    return any(i.status is InstallmentStatus.PAID for i in request.installments)


async def do_cancel_payment_request(
    session: AsyncSession, *, request: PaymentRequest, actor: Actor, reason: str
) -> None:
    """Supersede a payment request: its open installments are cancelled, on the timeline."""
    if request.superseded_at is not None:
        return
    request.superseded_at = utcnow()
    for old in request.installments:
        if old.status in (InstallmentStatus.OPEN, InstallmentStatus.OVERDUE):
            old.status = InstallmentStatus.CANCELLED
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=request.case_id,
        summary=(
            f"Pagamento cancelado: {format_brl(request.total_amount)} em "
            f"{request.installments_count}x ({reason})."
        ),
        data={
            "payment_request_id": request.id,
            "cancelled": True,
            "amount": str(request.total_amount),
            "installments": request.installments_count,
            "reason": reason,
        },
    )
    emit(
        session,
        ev.PaymentCancelled(
            **about(case_id=request.case_id, actor=actor),
            payment_request_id=request.id,
            amount=request.total_amount,
            installments=request.installments_count,
            reason=reason,
        ),
    )
    await session.flush()


async def do_issue_payment_request(
    session: AsyncSession,
    *,
    case: Case,
    brand: Brand,
    amount: Decimal,
    installments: int,
    provider: PaymentProvider,
    actor: Actor,
    today: dt.date | None = None,
) -> PaymentRequest:
    """Create a payment request for the agreed terms, cancelling any previous open one."""
    today = today or utcnow().date()
    previous = await get_current_payment_request(session, case_id=case.id)
    if previous is not None:
        await do_cancel_payment_request(
            session,
            request=previous,
            actor=actor,
            reason=(
                "substituído por novos dados de pagamento"
                if states_terms(previous, amount=amount, installments=installments)
                else f"novo acordo: {format_brl(amount)} em {installments}x"
            ),
        )
    request = PaymentRequest(
        case_id=case.id,
        public_token=secrets.token_urlsafe(24),
        total_amount=amount,
        installments_count=installments,
        provider=provider.name,
    )
    session.add(request)
    await session.flush()
    rows: list[Installment] = []
    for number, part in enumerate(split_amount(amount, installments), start=1):
        due = today + dt.timedelta(
            days=FIRST_DUE_IN_DAYS + DAYS_BETWEEN_INSTALLMENTS * (number - 1)
        )
        txid = f"T{request.id:08d}N{number:02d}{secrets.token_hex(4).upper()}"
        charge = provider.issue_charge(
            brand=brand, case_reference=case.reference, amount=part, due_date=due, txid=txid
        )
        rows.append(
            Installment(
                payment_request_id=request.id,
                number=number,
                amount=part,
                due_date=due,
                txid=txid,
                pix_payload=charge.pix_payload,
                boleto_barcode=charge.boleto_barcode,
                boleto_line=charge.boleto_line,
            )
        )
    session.add_all(rows)
    await session.flush()
    await session.refresh(request, ["installments"])
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        summary=(
            f"Pagamento emitido: {format_brl(amount)} em {installments}x "
            f"(1ª parcela vence em {rows[0].due_date:%d/%m/%Y})."
            + (" Substitui o pagamento anterior." if previous is not None else "")
        ),
        data={
            "payment_request_id": request.id,
            "amount": str(amount),
            "installments": installments,
            "replaces": previous.id if previous is not None else None,
        },
    )
    emit(
        session,
        ev.PaymentIssued(
            **about(case_id=case.id, actor=actor),
            payment_request_id=request.id,
            amount=amount,
            installments=installments,
            replaces=previous.id if previous is not None else None,
        ),
    )
    return request


def installments_of(request: PaymentRequest) -> Sequence[Installment]:
    return [i for i in request.installments if i.status is not InstallmentStatus.CANCELLED]
