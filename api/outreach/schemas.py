"""What the outreach API reads and shows."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.cases.lifecycle import CaseStatus
from api.conversations.models import Channel, DeliveryStatus
from api.ids import MAX_ID
from api.outreach.models import BatchState, ItemState

CaseId = Annotated[int, Field(ge=1, le=MAX_ID)]


class NoticeRequest(BaseModel):
    """Send the notice to these cases, or to every case of a brand and/or status."""

    model_config = ConfigDict(extra="forbid")

    case_ids: list[CaseId] = Field(default_factory=list, max_length=5000)
    brand_id: CaseId | None = None
    status: CaseStatus | None = None
    channel: Literal["email", "whatsapp"] = "email"
    dry_run: bool = False

    @model_validator(mode="after")
    def _one_selection(self) -> NoticeRequest:
        by_filter = self.brand_id is not None or self.status is not None
        if bool(self.case_ids) == by_filter:
            raise ValueError("give case_ids, or brand_id and/or status (not both)")
        return self


class PreviewOut(BaseModel):
    case_id: int
    case_reference: str
    would_send: bool
    address: str | None = None
    reason: str | None = None
    detail: str | None = None


class BatchOut(BaseModel):
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
    percent: int
    next_at: dt.datetime | None


class ItemOut(BaseModel):
    case_id: int
    case_reference: str
    state: ItemState
    reason: str | None
    detail: str | None
    address: str | None
    message_id: int | None
    provider_id: str | None
    delivery_status: DeliveryStatus | None
    processed_at: dt.datetime | None
    not_before: dt.datetime


class BatchReportOut(BatchOut):
    items: list[ItemOut]


class OptInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phone: str = Field(min_length=8, max_length=40)
    source: str = Field(min_length=2, max_length=200)


class OptInOut(BaseModel):
    id: int
    contact_point_id: int
    source: str
    created_at: dt.datetime
