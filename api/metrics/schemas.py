"""The shapes of the metrics (JSON API, panel, CLI and CSV read the same objects).

Durations are seconds (float), each in wall-clock time and in business time (the business
calendar: hours, days, holidays). Rates are fractions 0..1, None when the denominator is 0.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import BaseModel, Field


class Stat(BaseModel):
    """How a set of durations is distributed (seconds)."""

    n: int = 0
    median: float | None = None
    p90: float | None = None
    mean: float | None = None


class Timing(BaseModel):
    """One duration figure in wall-clock and in business time."""

    wall: Stat = Field(default_factory=Stat)
    business: Stat = Field(default_factory=Stat)


class Filters(BaseModel):
    """What the figures were restricted to (all optional)."""

    period: str | None = Field(None, description="YYYY-MM, or from/to below")
    date_from: dt.date | None = Field(None, description="first local day included")
    date_to: dt.date | None = Field(None, description="last local day included")
    brand_id: int | None = None
    channel: str | None = None
    analyst_id: int | None = None
    timezone: str = "America/Sao_Paulo"


class ChannelRow(BaseModel):
    channel: str
    # Conversations (cohort: started in the period)
    conversations: int = 0
    conversations_contacted: int = 0
    conversations_answered: int = 0
    response_rate: float | None = None
    cases_contacted: int = 0
    cases_answered: int = 0
    case_response_rate: float | None = None
    # Outbound messages (sent in the period)
    messages_sent: int = 0
    messages_delivered: int = 0
    delivery_rate: float | None = None
    messages_read: int | None = None
    read_rate: float | None = None
    messages_failed: int = 0
    messages_received: int = 0
    # Handoffs and opt-outs
    handoff_events: int = 0
    handoff_cases: int = 0
    conversations_handed_off: int = 0
    handoff_rate: float | None = None
    opt_out_events: int = 0
    conversations_opted_out: int = 0
    opt_out_rate: float | None = None
    # Outcomes (case cohort; a case on both channels counts on both)
    cases_engaged: int = 0
    agreement_cases: int = 0
    agreement_rate: float | None = None
    payment_cases: int = 0
    payment_rate: float | None = None
    removal_cases: int = 0
    removal_rate: float | None = None
    conversion_agreement: float | None = None
    conversion_payment: float | None = None
    # Last-touch attribution: each agreement credited once, to one channel
    attributed_agreements: int = 0
    attributed_payments: int = 0
    bot_only_agreements: int = 0
    bot_only_share: float | None = None
    # Times
    bot_first_response: Timing = Field(default_factory=Timing)
    bot_next_response: Timing = Field(default_factory=Timing)
    human_first_response: Timing = Field(default_factory=Timing)
    human_next_response: Timing = Field(default_factory=Timing)
    queue_wait: Timing = Field(default_factory=Timing)
    notice_to_agreement: Timing = Field(default_factory=Timing)
    notice_to_payment: Timing = Field(default_factory=Timing)


class ProviderRow(BaseModel):
    """One WhatsApp provider (or e-mail) of a channel: the conversation and delivery figures."""

    channel: str
    provider: str
    conversations: int = 0
    conversations_contacted: int = 0
    conversations_answered: int = 0
    response_rate: float | None = None
    messages_sent: int = 0
    messages_delivered: int = 0
    delivery_rate: float | None = None
    messages_read: int | None = None
    read_rate: float | None = None
    messages_failed: int = 0


class AnalystRow(BaseModel):
    analyst_id: int
    name: str
    handoffs_taken: int = 0
    handoff_cases: int = 0
    messages_sent: int = 0
    queue_wait: Timing = Field(default_factory=Timing)
    first_response: Timing = Field(default_factory=Timing)
    next_response: Timing = Field(default_factory=Timing)
    sla_breaches: int = 0
    agreements: int = 0
    agreed_amount: Decimal = Decimal("0.00")
    reference_amount: Decimal = Decimal("0.00")
    discount_amount: Decimal = Decimal("0.00")
    discount_rate: float | None = None


class BrandRow(BaseModel):
    brand_id: int
    name: str
    cases: int = 0
    notified: int = 0
    engaged: int = 0
    agreement: int = 0
    paid: int = 0
    closed: int = 0
    reopened: int = 0
    bot_only_agreements: int = 0
    agreed_amount: Decimal = Decimal("0.00")
    received_amount: Decimal = Decimal("0.00")


class StatusRow(BaseModel):
    brand_id: int
    status: str
    cases: int


class ReasonRow(BaseModel):
    channel: str
    reason: str
    events: int
    cases: int


class EventCountRow(BaseModel):
    kind: str
    events: int
    cases: int
    amount: Decimal | None = None


class WeekRow(BaseModel):
    week: dt.date
    cases: int = 0
    engaged: int = 0
    agreement: int = 0
    paid: int = 0
    bot_first_response: Timing = Field(default_factory=Timing)
    human_first_response: Timing = Field(default_factory=Timing)


class MetricsReport(BaseModel):
    filters: Filters
    channels: list[ChannelRow] = Field(default_factory=list)
    providers: list[ProviderRow] = Field(default_factory=list)
    analysts: list[AnalystRow] = Field(default_factory=list)
    brands: list[BrandRow] = Field(default_factory=list)
    statuses: list[StatusRow] = Field(default_factory=list)
    handoff_reasons: list[ReasonRow] = Field(default_factory=list)
    events: list[EventCountRow] = Field(default_factory=list)
    weeks: list[WeekRow] = Field(default_factory=list)
