"""The typed domain events: one pydantic model per kind, each with its own JSON schema.

Every event carries the same envelope (case, conversation, channel, who acted and when); the
fields a kind adds are its payload, stored as JSON beside the envelope's own columns.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.db import utcnow


class EventActorKind(enum.StrEnum):
    """Who caused the event: the timeline's actors plus `rule` (automations, next issue)."""

    INFRINGER = "infringer"
    BOT = "bot"
    ANALYST = "analyst"
    SYSTEM = "system"
    RULE = "rule"


ENVELOPE_FIELDS = frozenset(
    {"case_id", "conversation_id", "channel", "actor_kind", "actor_id", "occurred_at"}
)
KINDS: dict[str, type[DomainEvent]] = {}


class DomainEvent(BaseModel):
    """The envelope every event shares. Subclasses set `kind` and add their payload fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str]

    case_id: int | None = None
    conversation_id: int | None = None
    channel: str | None = None
    actor_kind: EventActorKind
    actor_id: int | None = None
    occurred_at: dt.datetime = Field(default_factory=utcnow)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("kind")
        if kind is not None:
            if kind in KINDS:
                raise TypeError(f"event kind {kind!r} defined twice")
            KINDS[kind] = cls

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")
        return value.astimezone(dt.UTC)

    def payload(self) -> dict[str, Any]:
        """The kind's own fields, JSON-ready (what the `payload` column stores)."""
        return self.model_dump(mode="json", exclude=set(ENVELOPE_FIELDS))


# Messages ---------------------------------------------------------------------------------


class MessageReceived(DomainEvent):
    """An inbound message was stored (once per provider id)."""

    kind: ClassVar[str] = "message.received"
    message_id: int
    attachments: int = 0
    answerable: bool = True


class MessageSent(DomainEvent):
    """An outbound message was written (queued in the outbox) by the bot, an analyst or the
    system; what the provider later reports is message.delivered / message.failed."""

    kind: ClassVar[str] = "message.sent"
    message_id: int
    author_kind: str
    template: str | None = None


class MessageDelivered(DomainEvent):
    """The provider moved an outbound message forward: sent (accepted), delivered or read."""

    kind: ClassVar[str] = "message.delivered"
    message_id: int
    status: str


class MessageFailed(DomainEvent):
    """An outbound message failed for good (provider report, or retries exhausted)."""

    kind: ClassVar[str] = "message.failed"
    message_id: int
    status: str
    error: str | None = None


class BotTurnRead(DomainEvent):
    """The bot (NLU) read an inbound message: its intent and confidence."""

    kind: ClassVar[str] = "bot.turn_read"
    message_id: int
    intent: str | None = None
    confidence: float | None = None


# Handoff -----------------------------------------------------------------------------------


class HandoffRequested(DomainEvent):
    kind: ClassVar[str] = "handoff.requested"
    reason: str


class HandoffClaimed(DomainEvent):
    """An analyst took the conversation (or a supervisor assigned it to `analyst_id`)."""

    kind: ClassVar[str] = "handoff.claimed"
    analyst_id: int
    previous_analyst_id: int | None = None


class HandoffReleased(DomainEvent):
    kind: ClassVar[str] = "handoff.released"
    note: str | None = None


class HandoffResolved(DomainEvent):
    kind: ClassVar[str] = "handoff.resolved"
    note: str | None = None


# Cases, agreements, payments ---------------------------------------------------------------


class CaseStatusChanged(DomainEvent):
    kind: ClassVar[str] = "case.status_changed"
    from_status: str
    to_status: str
    reason: str | None = None


class AgreementProposed(DomainEvent):
    """Terms inside the brand's policy were agreed in the conversation (ACORDO_PROPOSTO)."""

    kind: ClassVar[str] = "agreement.proposed"
    amount: Decimal
    installments: int


class AgreementAccepted(DomainEvent):
    """The agreement was signed (ACORDO_ASSINADO)."""

    kind: ClassVar[str] = "agreement.accepted"
    amount: Decimal | None = None
    installments: int | None = None


class PaymentIssued(DomainEvent):
    kind: ClassVar[str] = "payment.issued"
    payment_request_id: int
    amount: Decimal
    installments: int
    replaces: int | None = None


class PaymentCancelled(DomainEvent):
    kind: ClassVar[str] = "payment.cancelled"
    payment_request_id: int
    amount: Decimal
    installments: int
    reason: str


class PaymentConfirmed(DomainEvent):
    """Payment confirmed (by an analyst moving the case to PAGO, or by reconciliation)."""

    kind: ClassVar[str] = "payment.confirmed"
    amount: Decimal | None = None


# Contacts, notes, follow-ups ---------------------------------------------------------------


class ContactOptedOut(DomainEvent):
    """An address went on the suppression list (opt-out); contact is on hold."""

    kind: ClassVar[str] = "contact.opted_out"
    contact_id: int
    reason: str | None = None


class ContactOptOutLifted(DomainEvent):
    """An address came off the suppression list: an analyst lifted its opt-out, or a
    supervisor lifted the processing restriction that had suppressed it."""

    kind: ClassVar[str] = "contact.opt_out_lifted"
    contact_id: int
    reason: str | None = None


class NoteAdded(DomainEvent):
    kind: ClassVar[str] = "note.added"
    timeline_entry_id: int


class FollowUpSet(DomainEvent):
    """A follow-up date set, or cleared (`follow_up_at` None)."""

    kind: ClassVar[str] = "follow_up.set"
    follow_up_at: dt.datetime | None = None


# Defined now, emitted by the next issue (alerts and automations) ---------------------------


class AlertRaised(DomainEvent):
    kind: ClassVar[str] = "alert.raised"
    alert: str
    severity: str = "info"
    detail: dict[str, Any] = Field(default_factory=dict)


class RuleFired(DomainEvent):
    kind: ClassVar[str] = "rule.fired"
    rule: str
    effect: str
    detail: dict[str, Any] = Field(default_factory=dict)


def event_schemas() -> dict[str, dict[str, Any]]:
    """Each kind's JSON schema (for docs and for consumers outside Python)."""
    return {kind: model.model_json_schema() for kind, model in sorted(KINDS.items())}


# Outreach ------------------------------------------------------------------------------------


class NoticeSent(DomainEvent):
    """The extrajudicial notice was queued to the infringer (e-mail with the PDF, or the
    WhatsApp template); the case moved to NOTIFICADO with this response deadline."""

    kind: ClassVar[str] = "notice.sent"
    message_id: int
    batch_id: int | None = None
    deadline: dt.date


# Operations: ownership and alerts (api/operations) -----------------------------------------


class CaseAssigned(DomainEvent):
    """The case's responsible analyst changed (on import, or by a supervisor); None: nobody."""

    kind: ClassVar[str] = "case.assigned"
    analyst_id: int | None = None
    previous_analyst_id: int | None = None
    how: str  # "brand_default" | "round_robin" | "manual"


class AlertUpdated(DomainEvent):
    """An alert was acknowledged, snoozed or resolved (`state` is the new one)."""

    kind: ClassVar[str] = "alert.updated"
    alert_id: int
    alert: str
    state: str


# Listings (metrics: removal rate) ------------------------------------------------------------


class ListingStatusChanged(DomainEvent):
    """A listing's removal state moved (active, removal_pending, removed, relisted)."""

    kind: ClassVar[str] = "listing.status_changed"
    listing_id: int
    from_status: str
    to_status: str
