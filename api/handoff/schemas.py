"""What the handoff API takes and shows."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field, model_validator

from api.cases.lifecycle import CaseStatus
from api.conversations.models import Channel, DeliveryStatus, Holder
from api.ids import StrictId


class HandoffOut(BaseModel):
    conversation_id: int
    case_id: int | None
    case_reference: str | None
    brand: str | None
    channel: Channel
    address: str
    holder: Holder
    reason: str | None
    analyst_id: int | None
    analyst_name: str | None
    waiting_since: dt.datetime | None
    waiting_seconds: int


class ClaimIn(BaseModel):
    analyst_id: StrictId | None = Field(
        default=None, description="Supervisors: assign to this analyst"
    )


class AttachmentRef(BaseModel):
    """A file uploaded with POST /api/v1/attachments."""

    sha256: str = Field(pattern="^[0-9a-f]{64}$")
    filename: str = Field(min_length=1, max_length=255)


class AttachmentOut(BaseModel):
    sha256: str
    filename: str
    content_type: str
    size: int


class MessageIn(BaseModel):
    text: str | None = Field(default=None, max_length=4000)
    template: str | None = None
    variables: dict[str, str] = Field(default_factory=dict)
    attachments: list[AttachmentRef] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _one_of(self) -> MessageIn:
        if self.template and (self.text or self.attachments):
            raise ValueError("um modelo vai sozinho: sem 'text' nem anexos")
        if not self.template and not (self.text and self.text.strip()) and not self.attachments:
            raise ValueError("envie 'text', 'template' ou anexos")
        return self


class FollowUpIn(BaseModel):
    at: dt.datetime | None = Field(description="When to follow up; null clears it")


class MessageOut(BaseModel):
    id: int
    conversation_id: int
    text: str
    delivery_status: DeliveryStatus


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000)


class ReleaseIn(BaseModel):
    note: str | None = Field(default=None, max_length=1000)


class EscalateIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200)


class StatusIn(BaseModel):
    status: CaseStatus
    reason: str | None = Field(default=None, max_length=200)


class ConversationOut(BaseModel):
    id: int
    case_id: int | None
    channel: Channel
    address: str
    holder: Holder
    analyst_id: int | None
    handoff_reason: str | None
    closed_at: dt.datetime | None
    window_open_until: dt.datetime | None
    follow_up_at: dt.datetime | None = None
