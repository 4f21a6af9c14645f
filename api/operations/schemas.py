"""API shapes for alerts, ownership, preferences and the calendar."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.ids import MAX_ID
from api.operations.kinds import ALERT_KINDS


class AlertOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    subject: str
    cycle: str
    case_id: int | None
    conversation_id: int | None
    recipient_id: int | None
    to_supervisors: bool
    severity: str
    title: str
    body: str
    due_at: dt.datetime | None
    state: str
    repeats: int
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    snoozed_until: dt.datetime | None
    resolved_at: dt.datetime | None


class AlertPage(BaseModel):
    items: list[AlertOut]
    unread: int


class UnreadOut(BaseModel):
    unread: int


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: dt.datetime | None = None
    minutes: int | None = Field(default=None, ge=1, le=90 * 24 * 60)


class AssigneeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    analyst_id: int | None = Field(ge=1, le=MAX_ID)


class AssigneeOut(BaseModel):
    case_id: int
    assignee_id: int | None


class BrandDefaultOut(BaseModel):
    brand_id: int
    analyst_id: int | None


_KIND_ITEMS: dict[str, Any] = {"items": {"type": "string", "enum": sorted(ALERT_KINDS)}}


class PreferencesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email_kinds: list[str] = Field(
        default_factory=list,
        max_length=50,
        # The kinds are data (api/operations/kinds.py); the schema names them so a client
        # knows which strings are accepted.
        json_schema_extra=_KIND_ITEMS,
    )
    quiet_start: dt.time | None = None
    quiet_end: dt.time | None = None


class PreferencesOut(PreferencesIn):
    pass


class AlertKindOut(BaseModel):
    code: str
    label: str
    severity: str
    breach: bool
    settings: dict[str, Any]


class CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str | None = Field(default=None, max_length=64)
    shifts: str | None = Field(default=None, max_length=200)
    days: str | None = Field(default=None, max_length=20)
    state: str | None = Field(default=None, max_length=2)
    optional_holidays: list[str] | None = Field(default=None, max_length=20)


class CalendarOut(BaseModel):
    timezone: str
    shifts: str
    days: str
    state: str
    optional_holidays: list[str]
    extra_holidays: dict[str, str]
    open_now: bool


class HolidayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    day: dt.date
    name: str = Field(min_length=1, max_length=120)


class HolidayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    name: str


class RunDueOut(BaseModel):
    at: dt.datetime
    alerts_raised: int
