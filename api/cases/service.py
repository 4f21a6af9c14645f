"""Reading cases and moving them through their lifecycle."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from api.cases.lifecycle import (
    HUMAN_ONLY_TARGETS,
    OPEN_STATUSES,
    REASON_REQUIRED,
    CaseStatus,
    check_transition,
    status_label,
)
from api.cases.models import Case, Listing, ListingStatus
from api.cases.references import create_case_reference
from api.contacts.models import Infringer
from api.db import utcnow
from api.errors import NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events import kinds as ev
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry


@dataclass(frozen=True)
class CaseFilters:
    status: CaseStatus | None = None
    brand_id: int | None = None
    search: str | None = None  # reference, seller name or document


_CASE_LOAD = (joinedload(Case.brand), joinedload(Case.infringer), selectinload(Case.listings))


async def get_case(session: AsyncSession, *, case_id: int) -> Case | None:
    return await session.scalar(sa.select(Case).where(Case.id == case_id).options(*_CASE_LOAD))


async def get_case_by_reference(session: AsyncSession, *, reference: str) -> Case | None:
    query = sa.select(Case).where(Case.reference == reference.upper()).options(*_CASE_LOAD)
    return await session.scalar(query)


async def require_case(session: AsyncSession, *, case_id: int) -> Case:
    """The case, or NotFound (`access_*` names are kept for functions that check permission)."""
    case = await get_case(session, case_id=case_id)
    if case is None:
        raise NotFound(f"Caso {case_id} não encontrado.")
    return case


async def get_all_cases(
    session: AsyncSession, *, filters: CaseFilters, offset: int = 0, limit: int = 50
) -> tuple[Sequence[Case], int]:
    """One page of cases (newest first) and the total matching the filters."""
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.status is not None:
        conditions.append(Case.status == filters.status)
    if filters.brand_id is not None:
        conditions.append(Case.brand_id == filters.brand_id)
    if filters.search:
        term = f"%{filters.search.strip().lower()}%"
        conditions.append(
            sa.or_(
                sa.func.lower(Case.reference).like(term),
                Case.infringer_id.in_(
                    sa.select(Infringer.id).where(
                        sa.or_(
                            sa.func.lower(Infringer.name).like(term),
                            sa.func.lower(Infringer.document).like(term),
                        )
                    )
                ),
            )
        )
    total = await session.scalar(sa.select(sa.func.count()).select_from(Case).where(*conditions))
    query = (
        sa.select(Case)
        .where(*conditions)
        .order_by(Case.id.desc())
        .offset(offset)
        .limit(limit)
        .options(*_CASE_LOAD)
    )
    return (await session.scalars(query)).all(), int(total or 0)


async def get_open_case_for_infringer(session: AsyncSession, *, infringer_id: int) -> Case | None:
    """The most recent open case of an infringer, if any."""
    query = (
        sa.select(Case)
        .where(Case.infringer_id == infringer_id, Case.status.in_(OPEN_STATUSES))
        .order_by(Case.id.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def get_infringer_with_open_case(
    session: AsyncSession, *, infringer_id: int
) -> tuple[Infringer | None, Case | None]:
    """An infringer and its most recent open case (`get_open_case_for_infringer`), in one
    statement: every message from a known address asks for both."""
    row = (
        await session.execute(_infringer_with_open_case_statement(), {"infringer_id": infringer_id})
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


@functools.cache
def _infringer_with_open_case_statement() -> sa.Select[Infringer, Case | None]:
    """Built once (every inbound message from a known address runs it); binds the id. The
    outer join yields the open cases newest first, or a single row without a case."""
    return (
        sa.select(Infringer, Case)
        .outerjoin(Case, sa.and_(Case.infringer_id == Infringer.id, Case.status.in_(OPEN_STATUSES)))
        .where(Infringer.id == sa.bindparam("infringer_id", type_=Infringer.id.type))
        .order_by(Case.id.desc())
        .limit(1)
    )


async def do_change_status(
    session: AsyncSession,
    *,
    case: Case,
    target: CaseStatus,
    actor: Actor,
    reason: str | None = None,
    payment_confirmed: bool = False,
) -> Case:
    """Move a case along its lifecycle, refusing illegal moves, and record it on the timeline.

    `payment_confirmed`: the caller acts on a payment confirmation already recorded (an
    automation triggered by payment.confirmed), which may move the case to PAGO without an
    analyst; the confirmation is not emitted a second time."""
    check_transition(case.status, target)
    confirmed = payment_confirmed and target is CaseStatus.PAGO
    if target in HUMAN_ONLY_TARGETS and actor.kind is not ActorKind.ANALYST and not confirmed:
        raise PermissionDenied(
            f"Somente um analista pode mover o caso para {status_label(target)}."
        )
    if target in REASON_REQUIRED and not (reason and reason.strip()):
        raise ValidationFailed(f"Informe o motivo para mover o caso para {status_label(target)}.")
    previous = case.status
    now = utcnow()
    case.status = target
    case.status_changed_at = now
    case.updated_at = now
    if target is CaseStatus.ENCERRADO:
        case.close_reason = reason
    await create_entry(
        session,
        kind=EntryKind.STATUS_CHANGE,
        actor=actor,
        case_id=case.id,
        summary=f"Status: {status_label(previous)} → {status_label(target)}"
        + (f" ({reason})" if reason else ""),
        data={"from": str(previous), "to": str(target), "reason": reason},
    )
    envelope = about(case_id=case.id, actor=actor)
    emit(
        session,
        ev.CaseStatusChanged(
            **envelope, from_status=str(previous), to_status=str(target), reason=reason
        ),
    )
    if target is CaseStatus.ACORDO_ASSINADO:
        emit(
            session,
            ev.AgreementAccepted(
                **envelope, amount=case.agreed_amount, installments=case.agreed_installments
            ),
        )
    elif target is CaseStatus.PAGO and not confirmed:
        emit(session, ev.PaymentConfirmed(**envelope, amount=case.agreed_amount))
    return case


async def do_advance_status(
    session: AsyncSession, *, case: Case, path: Sequence[CaseStatus], actor: Actor, reason: str
) -> Case:
    """Walk the case through `path`, skipping steps already passed; each step must be legal."""
    if case.status in path:
        path = path[path.index(case.status) + 1 :]
    for target in path:
        await do_change_status(session, case=case, target=target, actor=actor, reason=reason)
    return case


async def do_set_listing_status(
    session: AsyncSession, *, listing: Listing, status: ListingStatus, actor: Actor, note: str
) -> Listing:
    previous = listing.status
    listing.status = status
    listing.status_changed_at = utcnow()
    await create_entry(
        session,
        kind=EntryKind.LISTING,
        actor=actor,
        case_id=listing.case_id,
        summary=f"Anúncio {listing.url}: {previous} → {status}. {note}".strip(),
        data={"listing_id": listing.id, "from": str(previous), "to": str(status)},
    )
    emit(
        session,
        ev.ListingStatusChanged(
            **about(case_id=listing.case_id, actor=actor),
            listing_id=listing.id,
            from_status=str(previous),
            to_status=str(status),
        ),
    )
    return listing


async def create_case(
    session: AsyncSession,
    *,
    brand_id: int,
    infringer_id: int,
    listings: Sequence[tuple[str, str]] = (),
    claimed_amount: Decimal | None = None,
    reference: str | None = None,
    actor: Actor | None = None,
) -> Case:
    """Open a case (status DETECTADO) with its listings and record it on the timeline."""
    case = Case(
        reference=reference or await create_case_reference(session, year=utcnow().year),
        brand_id=brand_id,
        infringer_id=infringer_id,
        claimed_amount=claimed_amount,
        status=CaseStatus.DETECTADO,
    )
    session.add(case)
    await session.flush()
    for url, marketplace in listings:
        session.add(Listing(case_id=case.id, url=url, marketplace=marketplace))
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor or Actor.system(),
        case_id=case.id,
        summary=f"Caso {case.reference} aberto.",
        data={"listings": len(listings)},
    )
    return case


def deadline_from_notice(notice_sent_at: dt.datetime, response_days: int) -> dt.date:
    return (notice_sent_at + dt.timedelta(days=response_days)).date()
