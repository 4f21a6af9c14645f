"""An analyst marks an installment paid (a receipt checked by hand, a transfer seen in the
bank): the installment records when, the case's timeline records who."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.db import utcnow
from api.errors import Conflict, NotFound
from api.identifiers.money import format_brl
from api.payments.models import Installment, InstallmentStatus, PaymentRequest
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry

_PAYABLE = (InstallmentStatus.OPEN, InstallmentStatus.OVERDUE)


async def do_mark_installment_paid(
    session: AsyncSession, *, case_id: int, installment_id: int, analyst: Analyst
) -> Installment:
    """Mark one open or overdue installment of the case's current request paid; a second
    click (or a concurrent one) finds it paid and changes nothing."""
    installment = await session.scalar(
        sa.select(Installment).where(Installment.id == installment_id).with_for_update()
    )
    request = (
        await session.get(PaymentRequest, installment.payment_request_id)
        if installment is not None
        else None
    )
    if installment is None or request is None or request.case_id != case_id:
        raise NotFound("Parcela não encontrada neste caso.")
    if installment.status is InstallmentStatus.PAID:
        raise Conflict(f"A parcela {installment.number} já está paga.")
    if installment.status not in _PAYABLE or request.superseded_at is not None:
        raise Conflict("Esta parcela pertence a um pedido de pagamento substituído ou cancelado.")
    installment.status = InstallmentStatus.PAID
    installment.paid_at = utcnow()
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name),
        case_id=case_id,
        summary=(
            f"Parcela {installment.number}/{request.installments_count} "
            f"({format_brl(installment.amount)}) marcada como paga por {analyst.name}."
        ),
        data={"installment_id": installment.id, "payment_request_id": request.id},
    )
    await session.flush()
    return installment
