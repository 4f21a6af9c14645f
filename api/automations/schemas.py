"""The shape of a rule (trigger, conditions, actions) and of the API's answers.

A rule is stored as JSON; these models are its only reader and writer, so a stored rule always
parses. Names and values are English identifiers; what analysts read (labels, descriptions)
comes from `describe_*` below, in Portuguese.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.cases.lifecycle import CaseStatus, status_label
from api.conversations.models import Channel, Holder
from api.identifiers.money import format_brl

_STRICT = ConfigDict(extra="forbid", frozen=True)


class EventTrigger(BaseModel):
    """Fires on each committed event of `event` (read by a durable consumer)."""

    model_config = _STRICT
    type: Literal["event"]
    event: str = Field(max_length=40)


# What a time trigger counts from, and what stops it:
# unanswered       our last message on a conversation, with no answer since (subject: conversation)
# notice_deadline  the end of the notice's response deadline, with no answer since the notice
# installment_due  the end of an open installment's due date, still unpaid (subject: installment)
# status_since     the case entering its current status, still in it
# event            the case's last event of `event`, with none of `without` after it
TimeAnchor = Literal["unanswered", "notice_deadline", "installment_due", "status_since", "event"]


class TimeTrigger(BaseModel):
    """Fires once per cycle when `days` (business days unless `calendar_days`) have passed
    since the anchor without the thing that stops it."""

    model_config = _STRICT
    type: Literal["time"]
    anchor: TimeAnchor
    days: int = Field(default=0, ge=0, le=365)
    calendar_days: bool = False
    event: str | None = Field(default=None, max_length=40)
    without: tuple[str, ...] = ()


Trigger = Annotated[EventTrigger | TimeTrigger, Field(discriminator="type")]


class Conditions(BaseModel):
    """Every condition given must hold (an empty list means "any")."""

    model_config = _STRICT
    statuses: tuple[CaseStatus, ...] = ()
    brand_ids: tuple[int, ...] = ()
    channels: tuple[Channel, ...] = ()
    min_amount: Decimal | None = Field(default=None, ge=0)
    max_amount: Decimal | None = Field(default=None, ge=0)
    # The event's own facts (event triggers): the intent read, the alert kind, the new status,
    # who caused it.
    intents: tuple[str, ...] = ()
    alert_kinds: tuple[str, ...] = ()
    to_statuses: tuple[CaseStatus, ...] = ()
    actor_kinds: tuple[Literal["infringer", "bot", "analyst", "system", "rule"], ...] = ()
    # The conversation's holder (bot, waiting for a person, a person).
    holders: tuple[Holder, ...] = ()
    has_agreement: bool | None = None
    # Case tags: the case carries at least one of them.
    tags: tuple[str, ...] = ()


class _Action(BaseModel):
    model_config = _STRICT
    # Run later: this many business days after the firing (0: now).
    delay_days: int = Field(default=0, ge=0, le=90)


class SendTemplate(_Action):
    type: Literal["send_template"]
    template: str = Field(max_length=80)
    # "conversation": the conversation of the trigger (or the case's latest open one).
    channel: Literal["conversation", "whatsapp", "email"] = "conversation"


class SendPaymentDetails(_Action):
    """The payment details of the case's current agreement (issued when none states it)."""

    type: Literal["send_payment_details"]
    template: str = Field(default="link_pagamento", max_length=80)


class MoveStatus(_Action):
    type: Literal["move_status"]
    to: CaseStatus
    reason: str | None = Field(default=None, max_length=200)


class Assign(_Action):
    """Make `analyst_id` the case's responsible analyst (and hand the waiting conversation)."""

    type: Literal["assign"]
    analyst_id: int


class AddNote(_Action):
    type: Literal["add_note"]
    text: str = Field(min_length=1, max_length=2000)


class SetFollowUp(_Action):
    type: Literal["set_follow_up"]
    days: int = Field(default=1, ge=0, le=365)
    calendar_days: bool = False


class RaiseAlert(_Action):
    type: Literal["raise_alert"]
    kind: str = Field(max_length=40)
    title: str = Field(default="", max_length=200)
    severity: Literal["info", "warning", "critical"] = "warning"


class Handoff(_Action):
    type: Literal["handoff"]
    reason: str = Field(min_length=1, max_length=200)


Action = Annotated[
    SendTemplate
    | SendPaymentDetails
    | MoveStatus
    | Assign
    | AddNote
    | SetFollowUp
    | RaiseAlert
    | Handoff,
    Field(discriminator="type"),
]
SENDING_ACTIONS = frozenset({"send_template", "send_payment_details"})


class RuleSpec(BaseModel):
    """What defines a rule (create and replace)."""

    model_config = _STRICT
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    enabled: bool = True
    trigger: Trigger
    conditions: Conditions = Conditions()
    actions: tuple[Action, ...] = Field(min_length=1, max_length=10)
    allow_rule_events: bool = False

    @field_validator("name")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("o nome não pode ser vazio")
        return value


class RuleOut(BaseModel):
    id: int
    name: str
    description: str
    enabled: bool
    builtin_key: str | None
    trigger: dict[str, Any]
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]
    allow_rule_events: bool
    version: int
    updated_at: dt.datetime
    summary: str


class EnabledIn(BaseModel):
    model_config = _STRICT
    enabled: bool


class ExecutionOut(BaseModel):
    id: int
    rule_id: int
    rule_name: str
    subject: str
    trigger_key: str
    case_id: int | None
    conversation_id: int | None
    depth: int
    state: str
    sends: int
    summary: str
    created_at: dt.datetime


class PlannedAction(BaseModel):
    type: str
    description: str
    would_run: bool
    note: str | None = None


class DryRunRule(BaseModel):
    rule_id: int
    rule_name: str
    trigger: str
    would_fire: bool
    reason: str
    actions: list[PlannedAction]


class DryRunOut(BaseModel):
    case_id: int
    case_reference: str
    at: dt.datetime
    rules: list[DryRunRule]


# Descriptions (pt-BR) --------------------------------------------------------------------

ANCHOR_LABELS = {
    "unanswered": "nossa última mensagem sem resposta",
    "notice_deadline": "fim do prazo de resposta da notificação sem resposta",
    "installment_due": "vencimento de parcela em aberto",
    "status_since": "caso parado no mesmo status",
    "event": "último evento",
}


def describe_trigger(trigger: EventTrigger | TimeTrigger) -> str:
    if isinstance(trigger, EventTrigger):
        return f"quando ocorrer {trigger.event}"
    unit = "dias corridos" if trigger.calendar_days else "dias úteis"
    anchor = ANCHOR_LABELS[trigger.anchor]
    if trigger.anchor == "event":
        anchor = f"último {trigger.event}" + (
            f" sem {', '.join(trigger.without)}" if trigger.without else ""
        )
    return f"{trigger.days} {unit} após {anchor}"


def describe_action(action: Any) -> str:
    text: str
    if isinstance(action, SendTemplate):
        where = {"conversation": "na conversa", "whatsapp": "por WhatsApp", "email": "por e-mail"}
        text = f"enviar o modelo {action.template!r} {where[action.channel]}"
    elif isinstance(action, SendPaymentDetails):
        text = f"enviar os dados de pagamento do acordo (modelo {action.template!r})"
    elif isinstance(action, MoveStatus):
        text = f"mover o caso para {status_label(action.to)}"
    elif isinstance(action, Assign):
        text = f"atribuir o caso ao analista {action.analyst_id}"
    elif isinstance(action, AddNote):
        text = f"adicionar a nota “{action.text}”"
    elif isinstance(action, SetFollowUp):
        unit = "dias corridos" if action.calendar_days else "dias úteis"
        text = f"marcar acompanhamento em {action.days} {unit}"
    elif isinstance(action, RaiseAlert):
        text = f"gerar alerta {action.kind!r}"
    elif isinstance(action, Handoff):
        text = f"encaminhar para atendimento humano ({action.reason})"
    else:  # pragma: no cover - the union is closed
        text = str(action)
    if action.delay_days:
        text += f" ({action.delay_days} dias úteis depois)"
    return text


def describe_conditions(conditions: Conditions) -> str:
    parts: list[str] = []
    if conditions.statuses:
        parts.append("status " + " ou ".join(status_label(s) for s in conditions.statuses))
    if conditions.to_statuses:
        parts.append("indo para " + " ou ".join(status_label(s) for s in conditions.to_statuses))
    if conditions.brand_ids:
        parts.append("marcas " + ", ".join(str(b) for b in conditions.brand_ids))
    if conditions.channels:
        parts.append("canal " + " ou ".join(str(c) for c in conditions.channels))
    if conditions.min_amount is not None:
        parts.append(f"valor ≥ {format_brl(conditions.min_amount)}")
    if conditions.max_amount is not None:
        parts.append(f"valor ≤ {format_brl(conditions.max_amount)}")
    if conditions.intents:
        parts.append("intenção " + " ou ".join(conditions.intents))
    if conditions.alert_kinds:
        parts.append("alerta " + " ou ".join(conditions.alert_kinds))
    if conditions.actor_kinds:
        parts.append("causado por " + " ou ".join(conditions.actor_kinds))
    if conditions.holders:
        parts.append("conversa com " + " ou ".join(str(h) for h in conditions.holders))
    if conditions.tags:
        parts.append("etiqueta " + " ou ".join(conditions.tags))
    if conditions.has_agreement is not None:
        parts.append("com acordo" if conditions.has_agreement else "sem acordo")
    return "; ".join(parts) or "sempre"
