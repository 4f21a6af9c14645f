"""Read models of notice sends: a batch's progress and its per-case report (panel, API, CLI)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.brands.models import Brand
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.conversations.models import Channel, DeliveryStatus, Message
from api.outreach.models import BatchState, ItemState, OutreachBatch, OutreachItem


@dataclass(frozen=True)
class BatchProgress:
    id: int
    channel: Channel
    state: BatchState
    actor_name: str | None
    selection: dict[str, object]
    created_at: dt.datetime
    finished_at: dt.datetime | None
    total: int
    sent: int
    skipped: int
    failed: int
    pending: int
    # When the next pending item may go (the next business opening when queued outside hours).
    next_at: dt.datetime | None

    @property
    def processed(self) -> int:
        return self.sent + self.skipped + self.failed

    @property
    def percent(self) -> int:
        return round(100 * self.processed / self.total) if self.total else 100

    @property
    def finished(self) -> bool:
        return self.state is not BatchState.QUEUED


@dataclass(frozen=True)
class ItemReport:
    case_id: int
    case_reference: str
    state: ItemState
    reason: str | None
    detail: str | None
    address: str | None
    message_id: int | None
    # Our Message-ID (e-mail) or the provider's id, once the outbox delivered it.
    provider_id: str | None
    delivery_status: DeliveryStatus | None
    processed_at: dt.datetime | None
    not_before: dt.datetime


def _counts_query(batch_ids: Sequence[int]) -> sa.Select[int, ItemState, int, dt.datetime]:
    return (
        sa.select(
            OutreachItem.batch_id,
            OutreachItem.state,
            sa.func.count(),
            sa.func.min(OutreachItem.not_before),
        )
        .where(OutreachItem.batch_id.in_(batch_ids))
        .group_by(OutreachItem.batch_id, OutreachItem.state)
    )


async def _progress(session: AsyncSession, batches: Sequence[OutreachBatch]) -> list[BatchProgress]:
    if not batches:
        return []
    counts: dict[int, dict[ItemState, int]] = {b.id: {} for b in batches}
    next_at: dict[int, dt.datetime] = {}
    for batch_id, state, count, first in (
        await session.execute(_counts_query([b.id for b in batches]))
    ).all():
        counts[batch_id][state] = int(count)
        if state is ItemState.PENDING:
            next_at[batch_id] = first
    return [
        BatchProgress(
            id=b.id,
            channel=b.channel,
            state=b.state,
            actor_name=b.actor_name,
            selection=dict(b.selection or {}),
            created_at=b.created_at,
            finished_at=b.finished_at,
            total=b.total,
            sent=counts[b.id].get(ItemState.SENT, 0),
            skipped=counts[b.id].get(ItemState.SKIPPED, 0),
            failed=counts[b.id].get(ItemState.FAILED, 0),
            pending=counts[b.id].get(ItemState.PENDING, 0),
            next_at=next_at.get(b.id),
        )
        for b in batches
    ]


async def get_batch_progress(session: AsyncSession, *, batch_id: int) -> BatchProgress | None:
    batch = await session.get(OutreachBatch, batch_id, populate_existing=True)
    if batch is None:
        return None
    return (await _progress(session, [batch]))[0]


async def get_recent_batches(session: AsyncSession, *, limit: int = 20) -> list[BatchProgress]:
    batches = (
        await session.scalars(
            sa.select(OutreachBatch).order_by(OutreachBatch.id.desc()).limit(limit)
        )
    ).all()
    return await _progress(session, batches)


async def get_batch_report(session: AsyncSession, *, batch_id: int) -> list[ItemReport]:
    """Per case: sent (to which address, with which Message-ID) or skipped and why."""
    rows = (
        await session.execute(
            sa.select(
                OutreachItem,
                Case.reference,
                Message.provider_id,
                Message.delivery_status,
            )
            .join(Case, Case.id == OutreachItem.case_id)
            .outerjoin(Message, Message.id == OutreachItem.message_id)
            .where(OutreachItem.batch_id == batch_id)
            .order_by(OutreachItem.id)
        )
    ).all()
    return [
        ItemReport(
            case_id=item.case_id,
            case_reference=reference,
            state=item.state,
            reason=item.reason,
            detail=item.detail,
            address=item.address,
            message_id=item.message_id,
            provider_id=provider_id,
            delivery_status=delivery_status,
            processed_at=item.processed_at,
            not_before=item.not_before,
        )
        for item, reference, provider_id, delivery_status in rows
    ]


@dataclass(frozen=True)
class BrandChoice:
    id: int
    name: str
    notifiable: int  # cases ready to notify (APTO_NOTIFICAR or REABERTO)


async def get_brand_choices(session: AsyncSession) -> list[BrandChoice]:
    """Brands for the send form, with how many of their cases are ready to notify."""
    ready = sa.func.count(Case.id).filter(
        Case.status.in_([CaseStatus.APTO_NOTIFICAR, CaseStatus.REABERTO])
    )
    rows = (
        await session.execute(
            sa.select(Brand.id, Brand.name, ready)
            .outerjoin(Case, Case.brand_id == Brand.id)
            .group_by(Brand.id, Brand.name)
            .order_by(Brand.name)
        )
    ).all()
    return [BrandChoice(id=i, name=n, notifiable=int(c)) for i, n, c in rows]


async def get_case_id_by_reference(session: AsyncSession, *, reference: str) -> int | None:
    return await session.scalar(
        sa.select(Case.id).where(Case.reference == reference.strip().upper())
    )
