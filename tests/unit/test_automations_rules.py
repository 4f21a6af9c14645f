"""The rule model and the timers, without a database: what parses, how rules read in
Portuguese, and when a time trigger runs out on the business calendar (weekends, national
holidays, after hours)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.automations.engine import check_conditions
from api.automations.schemas import (
    Conditions,
    EventTrigger,
    MoveStatus,
    RuleSpec,
    SendTemplate,
    TimeTrigger,
    describe_action,
    describe_conditions,
    describe_trigger,
)
from api.automations.subjects import due_after, end_of_day
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.config import Settings
from api.events import kinds as ev
from api.events.service import EventRecord
from api.operations.calendar import build_calendar

pytestmark = pytest.mark.unit
SP = ZoneInfo("America/Sao_Paulo")
CALENDAR = build_calendar(Settings(business_shifts="09:00-12:00,13:00-18:00"))


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SP)


def test_a_rule_parses_its_trigger_and_actions_by_type() -> None:
    spec = RuleSpec.model_validate(
        {
            "name": "  Lembrete   de prazo ",
            "trigger": {"type": "time", "anchor": "notice_deadline", "days": 2},
            "conditions": {"statuses": ["NOTIFICADO"]},
            "actions": [
                {"type": "send_template", "template": "lembrete_prazo"},
                {"type": "move_status", "to": "SEM_RESPOSTA", "delay_days": 1},
            ],
        }
    )
    assert spec.name == "Lembrete de prazo"
    assert isinstance(spec.trigger, TimeTrigger) and spec.trigger.days == 2
    assert isinstance(spec.actions[0], SendTemplate) and spec.actions[0].channel == "conversation"
    assert isinstance(spec.actions[1], MoveStatus) and spec.actions[1].to is CaseStatus.SEM_RESPOSTA
    assert describe_trigger(spec.trigger) == (
        "2 dias úteis após fim do prazo de resposta da notificação sem resposta"
    )
    assert (
        describe_action(spec.actions[1]) == "mover o caso para Sem resposta (1 dias úteis depois)"
    )
    assert describe_conditions(spec.conditions) == "status Notificado"


@pytest.mark.parametrize(
    "broken",
    [
        {"actions": []},
        {"actions": [{"type": "apagar_caso"}]},
        {"actions": [{"type": "move_status", "to": "INEXISTENTE"}]},
        {"trigger": {"type": "time", "anchor": "lua_cheia"}},
        {"trigger": {"type": "event", "event": "note.added", "extra": 1}},
        {"name": "   "},
    ],
)
def test_malformed_rules_do_not_parse(broken: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "name": "x",
        "trigger": {"type": "event", "event": "note.added"},
        "actions": [{"type": "add_note", "text": "x"}],
    }
    with pytest.raises(ValidationError):
        RuleSpec.model_validate(base | broken)


def trigger(days: int, *, calendar_days: bool = False) -> TimeTrigger:
    return TimeTrigger(type="time", anchor="unanswered", days=days, calendar_days=calendar_days)


@pytest.mark.parametrize(
    ("anchor", "days", "due"),
    [
        # Thursday → Friday, Monday, Tuesday.
        (at(2026, 12, 17, 15, 0), 3, at(2026, 12, 22, 15, 0)),
        # Christmas (Friday) and the weekend do not count.
        (at(2026, 12, 22, 10, 0), 3, at(2026, 12, 28, 10, 0)),
        # New Year's Day too.
        (at(2026, 12, 29, 11, 0), 3, at(2027, 1, 4, 11, 0)),
        # Sent on a Saturday: counting starts Monday.
        (at(2026, 12, 5, 10, 0), 1, at(2026, 12, 7, 10, 0)),
        # Carnival (Monday and Tuesday, 16-17/02/2026) is closed by default.
        (at(2026, 2, 13, 10, 0), 1, at(2026, 2, 18, 10, 0)),
        # Lands in the lunch break of the split shift: waits for 13:00.
        (at(2026, 12, 7, 12, 30), 1, at(2026, 12, 8, 13, 0)),
        # Lands after hours: waits for the next morning.
        (at(2026, 12, 7, 19, 30), 1, at(2026, 12, 9, 9, 0)),
    ],
)
def test_business_day_timers_skip_weekends_holidays_and_closed_hours(
    anchor: dt.datetime, days: int, due: dt.datetime
) -> None:
    assert due_after(CALENDAR, trigger(days), anchor) == due


def test_calendar_day_timers_still_act_only_when_open() -> None:
    # Friday 10:00 + 1 calendar day is Saturday 10:00: acted on Monday 09:00.
    assert due_after(CALENDAR, trigger(1, calendar_days=True), at(2026, 12, 4, 10, 0)) == at(
        2026, 12, 7, 9, 0
    )


def test_a_date_deadline_ends_at_local_midnight() -> None:
    assert end_of_day(CALENDAR, dt.date(2026, 12, 4)) == at(2026, 12, 5, 0, 0)


def _case(**values: Any) -> Case:
    defaults: dict[str, Any] = {
        "id": 1,
        "brand_id": 7,
        "status": CaseStatus.EM_NEGOCIACAO,
        "claimed_amount": Decimal("2000.00"),
        "agreed_amount": None,
    }
    return Case(**(defaults | values))


def _event(event: ev.DomainEvent) -> EventRecord:
    return EventRecord(id=1, tx_id=0, event=event)


async def _check(
    conditions: Conditions, case: Case, event: EventRecord | None = None
) -> str | None:
    return await check_conditions(
        cast(AsyncSession, None), conditions, case=case, conversation=None, event=event
    )


async def test_conditions_on_the_case_and_on_the_event() -> None:
    case = _case()
    assert await _check(Conditions(), case) is None
    assert await _check(Conditions(brand_ids=(8,)), case) == "marca fora das condições"
    assert await _check(Conditions(min_amount=Decimal("2500")), case) == "valor abaixo do mínimo"
    assert await _check(Conditions(has_agreement=True), case) == "acordo fora das condições"
    # Without statuses a rule only looks at open cases.
    assert await _check(Conditions(), _case(status=CaseStatus.ENCERRADO)) is not None
    assert (
        await _check(
            Conditions(statuses=(CaseStatus.ENCERRADO,)), _case(status=CaseStatus.ENCERRADO)
        )
        is None
    )

    read = _event(
        ev.BotTurnRead(
            case_id=1,
            channel="whatsapp",
            actor_kind=ev.EventActorKind.BOT,
            message_id=3,
            intent="ask_installments",
        )
    )
    assert await _check(Conditions(intents=("ask_installments",)), case, read) is None
    assert await _check(Conditions(intents=("greet",)), case, read) == "intenção fora das condições"
    assert (
        await _check(Conditions(channels=("email",)), case, read)
        == "canal whatsapp fora das condições"
    )  # type: ignore[arg-type]
    assert (
        await _check(Conditions(actor_kinds=("analyst",)), case, read)
        == "causado por bot, fora das condições"
    )


def test_event_trigger_needs_an_event_name() -> None:
    with pytest.raises(ValidationError):
        EventTrigger.model_validate({"type": "event"})
