"""Read model of the analyst's inbox: one queue of conversations needing a person, and the
brands its filter offers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.brands.models import Brand
from api.conversations.models import Channel
from api.handoff.service import QueueItem, get_handoffs


@dataclass(frozen=True)
class InboxView:
    items: Sequence[QueueItem]
    brands: Sequence[Brand]


async def get_inbox(
    session: AsyncSession,
    *,
    analyst: Analyst,
    state: str,
    channel: Channel | None = None,
    brand_id: int | None = None,
    with_brands: bool = True,
) -> InboxView:
    """The queue `state` (waiting, mine, held) as `analyst` sees it, filtered by channel and
    brand; the brands for the filter unless `with_brands` is False (a live refresh of the rows)."""
    items = await get_handoffs(
        session, state=state, analyst=analyst, channel=channel, brand_id=brand_id
    )
    brands: Sequence[Brand] = ()
    if with_brands:
        brands = (await session.scalars(sa.select(Brand).order_by(Brand.name))).all()
    return InboxView(items=items, brands=brands)
