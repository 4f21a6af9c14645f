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
    """Send the notice to cases: these ids, and/or every case of a brand, and/or in a status
    (the filters given combine). At least one of them selects."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["case_ids"]},
                {"required": ["brand_id"], "properties": {"brand_id": {"type": "integer"}}},
                {"required": ["status"], "properties": {"status": {"type": "string"}}},
            ]
        },
    )

    case_ids: list[CaseId] = Field(default_factory=list, min_length=1, max_length=5000)
    brand_id: CaseId | None = None
    status: CaseStatus | None = None
    channel: Literal["email", "whatsapp"] = "email"
    dry_run: bool = False

    @model_validator(mode="after")
    def _selects(self) -> NoticeRequest:
        if not self.case_ids and self.brand_id is None and self.status is None:
            raise ValueError("give case_ids, brand_id or status")
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

    phone: str = Field(min_length=8, max_length=40, pattern=r"^\+?[0-9][0-9 ().\-]{6,38}[0-9]$")
    source: str = Field(min_length=2, max_length=200, pattern=r"\S")


class OptInOut(BaseModel):
    id: int
    contact_point_id: int
    source: str
    created_at: dt.datetime
