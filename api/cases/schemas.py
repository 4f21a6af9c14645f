"""What the API shows of cases, listings and timeline entries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from api.cases.lifecycle import CaseStatus
from api.cases.models import ListingStatus
from api.contacts.models import InfringerKind
from api.timeline.models import ActorKind, EntryKind


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ListingOut(_Out):
    id: int
    url: str
    marketplace: str
    status: ListingStatus


class InfringerOut(_Out):
    id: int
    kind: InfringerKind
    name: str
    document: str | None


class BrandOut(_Out):
    id: int
    name: str


class CaseOut(_Out):
    id: int
    reference: str
    status: CaseStatus
    brand: BrandOut
    infringer: InfringerOut
    claimed_amount: Decimal | None
    agreed_amount: Decimal | None
    agreed_installments: int | None
    notice_sent_at: dt.datetime | None
    response_deadline: dt.date | None
    created_at: dt.datetime
    listings: list[ListingOut]


class CaseDetailOut(CaseOut):
    allowed_moves: list[CaseStatus]
    close_reason: str | None


class CasePage(BaseModel):
    items: list[CaseOut]
    total: int
    page: int
    page_size: int


class TimelineEntryOut(_Out):
    id: int
    kind: EntryKind
    actor_kind: ActorKind
    actor_name: str | None
    summary: str
    message_id: int | None
    conversation_id: int | None
    data: dict[str, Any] | None
    created_at: dt.datetime
