"""Read model of a case for the analyst's case page: the case with what it shows beside it
(moves allowed from its status, payment requests, conversations, recent timeline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import CaseStatus, allowed_moves
from api.cases.models import Case
from api.cases.service import require_case
from api.conversations.models import Conversation
from api.payments.models import PaymentRequest
from api.timeline.models import TimelineEntry
from api.timeline.service import get_case_timeline

RECENT_ENTRIES = 100


@dataclass(frozen=True)
class CaseView:
    case: Case
    moves: Sequence[CaseStatus]
    payments: Sequence[PaymentRequest]
    conversations: Sequence[Conversation]
    entries: Sequence[TimelineEntry]


async def get_case_view(session: AsyncSession, *, case_id: int) -> CaseView:
    """What the case page shows; NotFound when there is no such case."""
    case = await require_case(session, case_id=case_id)
    payments = (
        await session.scalars(
            sa.select(PaymentRequest)
            .where(PaymentRequest.case_id == case.id)
            .order_by(PaymentRequest.id.desc())
        )
    ).all()
    conversations = (
        await session.scalars(
            sa.select(Conversation).where(Conversation.case_id == case.id).order_by(Conversation.id)
        )
    ).all()
    entries = await get_case_timeline(session, case_id=case.id)
    return CaseView(
        case=case,
        moves=sorted(allowed_moves(case.status), key=list(CaseStatus).index),
        payments=payments,
        conversations=conversations,
        entries=list(entries)[-RECENT_ENTRIES:],
    )
