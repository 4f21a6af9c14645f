"""A person (infringer) as the analyst's person page shows them: every case, every address with
its opt-out state, and one timeline of every message from or to any of their addresses, across
cases and channels. Also the LGPD actions a supervisor takes on a person: export all their data
as a file, restrict processing (nothing more is sent to them), lift it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from api.analysts.models import Analyst, Role
from api.cases.models import Case
from api.contacts.models import ContactPoint, Infringer
from api.conversations.models import Conversation, Message
from api.db import utcnow
from api.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events.kinds import ContactOptedOut, ContactOptOutLifted
from api.payments.models import PaymentRequest
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor, create_entry

TIMELINE_PAGE = 100
RESTRICTION_REASON = "Tratamento restrito (LGPD)"


@dataclass(frozen=True)
class PersonMessage:
    message: Message
    conversation: Conversation
    case_reference: str | None


@dataclass(frozen=True)
class PersonView:
    infringer: Infringer
    contacts: Sequence[ContactPoint]
    cases: Sequence[Case]
    messages: Sequence[PersonMessage]
    more_before: int | None  # the message id to ask for older ones, None when no more


def check_is_supervisor(analyst: Analyst, what: str) -> None:
    if not analyst.has_role(Role.SUPERVISOR):
        raise PermissionDenied(f"Somente supervisores podem {what}.")


async def require_infringer(session: AsyncSession, *, infringer_id: int) -> Infringer:
    infringer = await session.get(Infringer, infringer_id)
    if infringer is None:
        raise NotFound(f"Pessoa {infringer_id} não encontrada.")
    return infringer


def _person_conversations(infringer_id: int) -> sa.CompoundSelect[Any]:
    """Every conversation with any of the person's addresses, or on any of their cases (a
    UNION of two index scans: an OR across the two columns scanned every conversation)."""
    contacts = sa.select(ContactPoint.id).where(ContactPoint.infringer_id == infringer_id)
    cases = sa.select(Case.id).where(Case.infringer_id == infringer_id)
    return sa.union(
        sa.select(Conversation.id).where(Conversation.contact_point_id.in_(contacts)),
        sa.select(Conversation.id).where(Conversation.case_id.in_(cases)),
    )


async def get_person_view(
    session: AsyncSession, *, infringer_id: int, before_id: int | None = None
) -> PersonView:
    """What the person page shows; NotFound when there is no such person. Messages newest
    first, a page at a time (`before_id` pages back)."""
    infringer = await require_infringer(session, infringer_id=infringer_id)
    contacts = (
        await session.scalars(
            sa.select(ContactPoint)
            .where(ContactPoint.infringer_id == infringer.id)
            .order_by(ContactPoint.kind, ContactPoint.id)
        )
    ).all()
    cases = (
        await session.scalars(
            sa.select(Case)
            .where(Case.infringer_id == infringer.id)
            .order_by(Case.id.desc())
            .options(joinedload(Case.brand))
        )
    ).all()
    conversation_ids = list(await session.scalars(_person_conversations(infringer.id)))
    messages: list[PersonMessage] = []
    more_before: int | None = None
    if conversation_ids:
        query = (
            sa.select(Message)
            .where(Message.conversation_id.in_(conversation_ids))
            .order_by(Message.id.desc())
            .limit(TIMELINE_PAGE + 1)
            .options(selectinload(Message.attachments))
        )
        if before_id is not None:
            query = query.where(Message.id < before_id)
        rows = list(await session.scalars(query))
        if len(rows) > TIMELINE_PAGE:
            rows = rows[:TIMELINE_PAGE]
            more_before = rows[-1].id
        conversations = {
            c.id: c
            for c in await session.scalars(
                sa.select(Conversation).where(
                    Conversation.id.in_({m.conversation_id for m in rows})
                )
            )
        }
        references = {c.id: c.reference for c in cases}
        missing = {m.case_id for m in rows if m.case_id and m.case_id not in references}
        if missing:
            for case_id, reference in await session.execute(
                sa.select(Case.id, Case.reference).where(Case.id.in_(missing))
            ):
                references[case_id] = reference
        messages = [
            PersonMessage(
                m,
                conversations[m.conversation_id],
                references.get(m.case_id) if m.case_id is not None else None,
            )
            for m in rows
        ]
    return PersonView(infringer, contacts, cases, messages, more_before)


def _iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: Any) -> str | None:
    return str(value) if value is not None else None


async def build_person_export(
    session: AsyncSession, *, infringer_id: int, analyst: Analyst
) -> dict[str, Any]:
    """Every piece of data held about a person (LGPD art. 18: access), as one JSON document;
    the export itself is recorded on each of their cases' timelines."""
    check_is_supervisor(analyst, "exportar os dados de uma pessoa")
    infringer = await require_infringer(session, infringer_id=infringer_id)
    contacts = (
        await session.scalars(
            sa.select(ContactPoint).where(ContactPoint.infringer_id == infringer.id)
        )
    ).all()
    cases = (
        await session.scalars(
            sa.select(Case)
            .where(Case.infringer_id == infringer.id)
            .order_by(Case.id)
            .options(joinedload(Case.brand), selectinload(Case.listings))
        )
    ).all()
    conversation_ids = list(await session.scalars(_person_conversations(infringer.id)))
    conversations = (
        await session.scalars(sa.select(Conversation).where(Conversation.id.in_(conversation_ids)))
    ).all()
    messages = (
        await session.scalars(
            sa.select(Message)
            .where(Message.conversation_id.in_(conversation_ids))
            .order_by(Message.id)
            .options(selectinload(Message.attachments))
        )
    ).all()
    case_ids = [c.id for c in cases]
    payments = (
        await session.scalars(
            sa.select(PaymentRequest)
            .where(PaymentRequest.case_id.in_(case_ids))
            .order_by(PaymentRequest.id)
        )
    ).all()
    entry_ids = sa.union(
        sa.select(TimelineEntry.id).where(TimelineEntry.case_id.in_(case_ids)),
        sa.select(TimelineEntry.id).where(TimelineEntry.conversation_id.in_(conversation_ids)),
    )
    entries = (
        await session.scalars(
            sa.select(TimelineEntry)
            .where(TimelineEntry.id.in_(entry_ids))
            .order_by(TimelineEntry.id)
        )
    ).all()
    now = utcnow()
    document: dict[str, Any] = {
        "exported_at": now.isoformat(),
        "exported_by": analyst.name,
        "person": {
            "id": infringer.id,
            "kind": str(infringer.kind),
            "name": infringer.name,
            "document": infringer.document,
            "created_at": _iso(infringer.created_at),
            "processing_restricted_at": _iso(infringer.processing_restricted_at),
            "processing_restricted_by": infringer.processing_restricted_by,
        },
        "contacts": [
            {
                "kind": str(c.kind),
                "value": c.value,
                "opted_out_at": _iso(c.opted_out_at),
                "opt_out_reason": c.opt_out_reason,
            }
            for c in contacts
        ],
        "cases": [
            {
                "reference": c.reference,
                "brand": c.brand.name,
                "status": str(c.status),
                "claimed_amount": _money(c.claimed_amount),
                "agreed_amount": _money(c.agreed_amount),
                "agreed_installments": c.agreed_installments,
                "notice_sent_at": _iso(c.notice_sent_at),
                "response_deadline": _iso(c.response_deadline),
                "created_at": _iso(c.created_at),
                "listings": [
                    {"url": item.url, "marketplace": item.marketplace, "status": str(item.status)}
                    for item in c.listings
                ],
            }
            for c in cases
        ],
        "conversations": [
            {
                "id": c.id,
                "channel": str(c.channel),
                "address": c.address,
                "created_at": _iso(c.created_at),
                "closed_at": _iso(c.closed_at),
            }
            for c in conversations
        ],
        "messages": [
            {
                "conversation_id": m.conversation_id,
                "direction": str(m.direction),
                "author": str(m.author_kind),
                "channel": str(m.channel),
                "subject": m.subject,
                "text": m.text,
                "at": _iso(m.created_at),
                "delivery_status": str(m.delivery_status),
                "attachments": [
                    {"filename": a.filename, "content_type": a.content_type, "size": a.size}
                    for a in m.attachments
                ],
            }
            for m in messages
        ],
        "payments": [
            {
                "case_id": p.case_id,
                "total_amount": _money(p.total_amount),
                "installments": [
                    {
                        "number": i.number,
                        "amount": _money(i.amount),
                        "due_date": _iso(i.due_date),
                        "status": str(i.status),
                        "paid_at": _iso(i.paid_at),
                    }
                    for i in p.installments
                ],
            }
            for p in payments
        ],
        "timeline": [
            {"at": _iso(e.created_at), "kind": str(e.kind), "summary": e.summary} for e in entries
        ],
    }
    actor = Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)
    for case in cases:
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=actor,
            case_id=case.id,
            summary=f"Dados da pessoa exportados (LGPD) por {analyst.name}.",
            data={"lgpd": "export", "infringer_id": infringer.id},
        )
    await session.flush()
    return document


async def do_restrict_processing(
    session: AsyncSession, *, infringer_id: int, analyst: Analyst, reason: str
) -> Infringer:
    """Restrict the processing of a person's data (LGPD): every address goes on the
    suppression list, so nothing more is sent to them by the bot, an analyst or a batch."""
    check_is_supervisor(analyst, "restringir o tratamento de dados")
    if not reason.strip():
        raise ValidationFailed("Informe o motivo da restrição.")
    infringer = await session.get(Infringer, infringer_id, with_for_update=True)
    if infringer is None:
        raise NotFound(f"Pessoa {infringer_id} não encontrada.")
    if infringer.processing_restricted_at is not None:
        raise Conflict("O tratamento dos dados desta pessoa já está restrito.")
    now = utcnow()
    infringer.processing_restricted_at = now
    infringer.processing_restricted_by = analyst.name
    actor = Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)
    why = f"{RESTRICTION_REASON}: {reason.strip()}"[:200]
    contacts = (
        await session.scalars(
            sa.select(ContactPoint)
            .where(ContactPoint.infringer_id == infringer.id)
            .with_for_update()
        )
    ).all()
    for contact in contacts:
        if contact.opted_out_at is None:
            contact.opted_out_at = now
            contact.opt_out_reason = why
            contact.opted_out_by = analyst.name
            emit(session, ContactOptedOut(**about(actor=actor), contact_id=contact.id, reason=why))
    for case_id in await session.scalars(
        sa.select(Case.id).where(Case.infringer_id == infringer.id)
    ):
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=actor,
            case_id=case_id,
            summary=f"Tratamento de dados restrito (LGPD) por {analyst.name}: {reason.strip()}",
            data={"lgpd": "restrict", "infringer_id": infringer.id},
        )
    await session.flush()
    return infringer


async def do_lift_restriction(
    session: AsyncSession, *, infringer_id: int, analyst: Analyst, reason: str
) -> Infringer:
    """Lift a processing restriction: the addresses it suppressed are released (an opt-out the
    person asked for stays)."""
    check_is_supervisor(analyst, "liberar o tratamento de dados")
    if not reason.strip():
        raise ValidationFailed("Informe o motivo da liberação.")
    infringer = await session.get(Infringer, infringer_id, with_for_update=True)
    if infringer is None:
        raise NotFound(f"Pessoa {infringer_id} não encontrada.")
    if infringer.processing_restricted_at is None:
        raise Conflict("O tratamento dos dados desta pessoa não está restrito.")
    infringer.processing_restricted_at = None
    infringer.processing_restricted_by = None
    actor = Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)
    for contact in await session.scalars(
        sa.select(ContactPoint).where(
            ContactPoint.infringer_id == infringer.id,
            ContactPoint.opt_out_reason.like(f"{RESTRICTION_REASON}%"),
        )
    ):
        contact.opted_out_at = None
        contact.opt_out_reason = None
        contact.opted_out_by = None
        emit(
            session,
            ContactOptOutLifted(**about(actor=actor), contact_id=contact.id, reason=reason.strip()),
        )
    for case_id in await session.scalars(
        sa.select(Case.id).where(Case.infringer_id == infringer.id)
    ):
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=actor,
            case_id=case_id,
            summary=f"Restrição de tratamento de dados retirada por {analyst.name}: {reason.strip()}",
            data={"lgpd": "lift", "infringer_id": infringer.id},
        )
    await session.flush()
    return infringer
