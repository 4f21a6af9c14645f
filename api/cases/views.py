"""Read model of a case for the analyst's case page: the case with what it shows beside it
(moves allowed from its status, payment requests, conversations, recent timeline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.cases.lifecycle import CaseStatus, allowed_moves
from api.cases.models import Case
from api.cases.service import require_case
from api.cases.tags import get_case_tags
from api.cases.workspace import channel_for_contact
from api.contacts.models import ContactPoint
from api.conversations.models import Channel, Conversation
from api.payments.models import PaymentRequest
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import get_case_timeline

RECENT_ENTRIES = 100


@dataclass(frozen=True)
class ContactOption:
    """An address of the infringer a conversation can be started with, on its channel."""

    contact: ContactPoint
    channel: Channel | None


@dataclass(frozen=True)
class ListingCheck:
    """The last recorded change of a listing's state, and who made it."""

    by: str | None
    at: object


@dataclass(frozen=True)
class CaseView:
    case: Case
    moves: Sequence[CaseStatus]
    payments: Sequence[PaymentRequest]
    conversations: Sequence[Conversation]
    entries: Sequence[TimelineEntry]
    tags: Sequence[str] = ()
    contacts: Sequence[ContactOption] = ()
    listing_checks: dict[int, ListingCheck] = field(default_factory=dict)
    assignee: Analyst | None = None
    analysts: Sequence[Analyst] = ()
    can_assign: bool = False


async def get_case_view(
    session: AsyncSession, *, case_id: int, with_analysts: bool = False
) -> CaseView:
    """What the case page shows; NotFound when there is no such case. `with_analysts`: the
    active analysts too (for a supervisor's assignment field)."""
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
    contacts = (
        await session.scalars(
            sa.select(ContactPoint)
            .where(ContactPoint.infringer_id == case.infringer_id)
            .order_by(ContactPoint.kind, ContactPoint.id)
        )
    ).all()
    # Who last checked each listing: the listing entries of the timeline already read.
    checks: dict[int, ListingCheck] = {}
    for entry in entries:
        listing_id = (
            (entry.data or {}).get("listing_id") if entry.kind is EntryKind.LISTING else None
        )
        if isinstance(listing_id, int):
            checks[listing_id] = ListingCheck(by=entry.actor_name, at=entry.created_at)
    assignee_id = case.assignee_id
    can_assign = True
    return CaseView(
        case=case,
        moves=sorted(allowed_moves(case.status), key=list(CaseStatus).index),
        payments=payments,
        conversations=conversations,
        entries=list(entries)[-RECENT_ENTRIES:],
        tags=await get_case_tags(session, case_id=case.id),
        contacts=[ContactOption(c, channel_for_contact(c)) for c in contacts],
        listing_checks=checks,
        assignee=await session.get(Analyst, assignee_id) if assignee_id else None,
        analysts=(
            (
                await session.scalars(
                    sa.select(Analyst).where(Analyst.active.is_(True)).order_by(Analyst.name)
                )
            ).all()
            if can_assign and with_analysts
            else ()
        ),
        can_assign=can_assign,
    )
