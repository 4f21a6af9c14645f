"""Firing a rule: claim the ledger row, run the actions, write the timeline and `rule.fired`.

Exactly once. The ledger row (rule, subject, trigger) is INSERTed before any action runs, in
the same transaction as the actions' own writes (messages go through the outbox there too): a
second attempt — a replayed event, a second sweep for the same moment, another worker — finds
the row and does nothing; a crash rolls back the claim with the actions. Each action runs in a
savepoint, so one that is refused (opt-out, WhatsApp window, illegal move) is recorded and the
others still run.

Loops. Events written by actions carry actor kind `rule` and, as actor id, the ledger row that
caused them; a rule ignores such events unless it opts in (`allow_rule_events`), and a chain of
rules stops at MAX_DEPTH.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.automations.models import AutomationExecution, AutomationRule, ScheduledAction
from api.automations.schemas import (
    Action,
    AddNote,
    Assign,
    Conditions,
    EventTrigger,
    Handoff,
    MoveStatus,
    RaiseAlert,
    RuleSpec,
    SendPaymentDetails,
    SendTemplate,
    SetFollowUp,
    describe_action,
)
from api.cases.lifecycle import OPEN_STATUSES, CaseStatus, status_label
from api.cases.models import Case
from api.cases.service import do_change_status
from api.cases.tags import get_tags_of_cases
from api.config import get_settings
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import channel_label
from api.db import utcnow
from api.errors import AppError
from api.events import about, emit
from api.events import kinds as ev
from api.events.service import EventRecord
from api.followups.service import do_set_follow_up
from api.handoff.service import do_request_handoff
from api.operations.alerts import AlertSpec, raise_alerts
from api.operations.calendar import BusinessCalendar
from api.operations.consumer import owner_of
from api.operations.kinds import kind_label
from api.payments.provider import get_payment_provider
from api.payments.service import (
    do_issue_payment_request,
    get_current_payment_request,
    has_payments,
    states_terms,
)
from api.templates.service import do_send_template
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry

log = logging.getLogger(__name__)

# Defaults of the limits (AUTOMATION_MAX_DEPTH, AUTOMATION_MAX_SENDS_PER_CASE_PER_DAY,
# AUTOMATION_MAX_SENDS_PER_HOUR override them): a chain rule → event → rule … stops after
# MAX_DEPTH links; rules queue at most so many messages per case in 24 hours and in all per hour.
MAX_DEPTH = 3
MAX_SENDS_PER_CASE_PER_DAY = 3
MAX_SENDS_PER_HOUR = 500


def limits() -> dict[str, int]:
    """The limits in force (settings; shown by the panel)."""
    settings = get_settings()
    return {
        "max_depth": settings.automation_max_depth,
        "max_sends_per_case_per_day": settings.automation_max_sends_per_case_per_day,
        "max_sends_per_hour": settings.automation_max_sends_per_hour,
    }


# Where a transaction keeps the enabled event rules it read (see consumer.py).
RULES_CACHE_KEY = "automations_event_rules"


@dataclass(frozen=True)
class RuleActor(Actor):
    """A rule acting: a system actor on the timeline ("Automação 'X'"); its events carry actor
    kind `rule` and the ledger row's id (see api.events.about)."""

    rule_execution_id: int | None = None


@dataclass(frozen=True)
class LoadedRule:
    row: AutomationRule
    spec: RuleSpec

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def name(self) -> str:
        return self.row.name


def load_rule(row: AutomationRule) -> LoadedRule:
    spec = RuleSpec.model_validate(
        {
            "name": row.name,
            "description": row.description,
            "enabled": row.enabled,
            "trigger": row.trigger,
            "conditions": row.conditions or {},
            "actions": row.actions,
            "allow_rule_events": row.allow_rule_events,
        }
    )
    return LoadedRule(row=row, spec=spec)


async def get_enabled_rules(session: AsyncSession, *, trigger_type: str) -> list[LoadedRule]:
    rows = (
        await session.scalars(
            sa.select(AutomationRule)
            .where(AutomationRule.enabled.is_(True))
            .order_by(AutomationRule.id)
        )
    ).all()
    loaded = [load_rule(row) for row in rows]
    return [rule for rule in loaded if rule.spec.trigger.type == trigger_type]


@dataclass
class Firing:
    """One rule about to act on one subject for one reason."""

    rule: LoadedRule
    case: Case
    subject: str
    trigger_key: str
    now: dt.datetime
    calendar: BusinessCalendar
    conversation: Conversation | None = None
    event: EventRecord | None = None
    depth: int = 0
    # Template variables the trigger knows (an installment's number, amount, due date).
    values: dict[str, str] = field(default_factory=dict)
    # What the trigger was about, for the timeline ("parcela 2 vencida em 01/12/2026").
    about: str = ""
    # The identity of an alert this firing raises, shared with the alert sweep's own
    # ("conv:5" / "t1765000000"); default: the firing's subject and trigger.
    alert_subject: str | None = None
    alert_cycle: str | None = None


@dataclass
class Outcome:
    state: str  # done, skipped, failed, scheduled
    text: str
    sends: int = 0


@dataclass
class _Run:
    firing: Firing
    actor: RuleActor
    execution: AutomationExecution
    sends: int = 0


# Conditions -------------------------------------------------------------------------------


async def check_conditions(
    session: AsyncSession,
    conditions: Conditions,
    *,
    case: Case,
    conversation: Conversation | None,
    event: EventRecord | None,
    tags: Mapping[int, list[str]] | None = None,
) -> str | None:
    """None when every condition holds, else why not (pt-BR). Event conditions are left out
    when there is no event (time triggers, dry runs)."""
    statuses = conditions.statuses or tuple(OPEN_STATUSES)
    if case.status not in statuses:
        return f"status {status_label(case.status)} fora das condições"
    if conditions.brand_ids and case.brand_id not in conditions.brand_ids:
        return "marca fora das condições"
    channel = event.event.channel if event is not None and event.event.channel else None
    if channel is None and conversation is not None:
        channel = str(conversation.channel)
    if conditions.channels and channel not in {str(c) for c in conditions.channels}:
        return f"canal {channel or 'nenhum'} fora das condições"
    amount = case.agreed_amount or case.claimed_amount
    if conditions.min_amount is not None and (amount is None or amount < conditions.min_amount):
        return "valor abaixo do mínimo"
    if conditions.max_amount is not None and (amount is None or amount > conditions.max_amount):
        return "valor acima do máximo"
    if conditions.has_agreement is not None and (
        (case.agreed_amount is not None) != conditions.has_agreement
    ):
        return "acordo fora das condições"
    if conditions.holders and (
        conversation is None or conversation.holder not in conditions.holders
    ):
        return "responsável pela conversa fora das condições"
    if conditions.tags:
        case_tags = (
            tags.get(case.id, [])
            if tags is not None
            else (await get_tags_of_cases(session, case_ids=[case.id])).get(case.id, [])
        )
        if not set(conditions.tags) & set(case_tags):
            return "etiquetas fora das condições"
    if event is not None:
        fact = event.event
        payload: dict[str, Any] = fact.payload()
        if conditions.actor_kinds and str(fact.actor_kind) not in conditions.actor_kinds:
            return f"causado por {fact.actor_kind}, fora das condições"
        if conditions.intents and payload.get("intent") not in conditions.intents:
            return "intenção fora das condições"
        if conditions.alert_kinds and payload.get("alert") not in conditions.alert_kinds:
            return "tipo de alerta fora das condições"
        if conditions.to_statuses and payload.get("to_status") not in {
            str(s) for s in conditions.to_statuses
        }:
            return "novo status fora das condições"
    return None


# The ledger and the limits ------------------------------------------------------------------


def _insert(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


async def _claim(
    session: AsyncSession, firing: Firing, *, state: str = "done", summary: str = ""
) -> int | None:
    """INSERT the ledger row; None when this (rule, subject, trigger) already has one."""
    statement = (
        _insert(session)(AutomationExecution)
        .values(
            rule_id=firing.rule.id,
            rule_version=firing.rule.row.version,
            subject=firing.subject,
            trigger_key=firing.trigger_key,
            case_id=firing.case.id,
            conversation_id=firing.conversation.id if firing.conversation else None,
            event_id=firing.event.id if firing.event else None,
            depth=firing.depth,
            state=state,
            sends=0,
            summary=summary,
            detail={},
            created_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["rule_id", "subject", "trigger_key"])
        .returning(AutomationExecution.id)
    )
    claimed: int | None = await session.scalar(statement)
    return claimed


async def _sends_since(
    session: AsyncSession, since: dt.datetime, *, case_id: int | None = None
) -> int:
    query = sa.select(sa.func.coalesce(sa.func.sum(AutomationExecution.sends), 0)).where(
        AutomationExecution.created_at >= since
    )
    if case_id is not None:
        query = query.where(AutomationExecution.case_id == case_id)
    return int(await session.scalar(query) or 0)


async def _check_send_limits(session: AsyncSession, run: _Run) -> str | None:
    now = utcnow()
    limit = limits()
    per_case_max = limit["max_sends_per_case_per_day"]
    per_case = await _sends_since(session, now - dt.timedelta(days=1), case_id=run.firing.case.id)
    if per_case + run.sends >= per_case_max:
        return f"limite de {per_case_max} envios automáticos por caso em 24 horas atingido"
    overall_max = limit["max_sends_per_hour"]
    overall = await _sends_since(session, now - dt.timedelta(hours=1))
    if overall + run.sends >= overall_max:
        return f"limite global de {overall_max} envios automáticos por hora atingido"
    return None


# Firing -------------------------------------------------------------------------------------


async def fire(session: AsyncSession, firing: Firing) -> AutomationExecution | None:
    """Run the rule's actions once for this subject and trigger; None when it already ran."""
    execution_id = await _claim(session, firing)
    if execution_id is None:
        return None
    execution = await session.get(AutomationExecution, execution_id)
    assert execution is not None
    actor = RuleActor(
        ActorKind.SYSTEM, name=f"Automação '{firing.rule.name}'", rule_execution_id=execution_id
    )
    run = _Run(firing=firing, actor=actor, execution=execution)
    outcomes: list[Outcome] = []
    for position, action in enumerate(firing.rule.spec.actions):
        if action.delay_days:
            outcomes.append(await _schedule(session, run, action, position))
            continue
        outcomes.append(await _run_in_savepoint(session, run, action))
    await _record(session, run, outcomes)
    return execution


async def record_depth_limit(session: AsyncSession, firing: Firing) -> None:
    """A chain of rules reached MAX_DEPTH: recorded once (ledger and timeline), nothing run."""
    text = f"não executada: limite de {limits()['max_depth']} automações encadeadas atingido"
    execution_id = await _claim(session, firing, state="skipped", summary=text)
    if execution_id is None:
        return
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=RuleActor(
            ActorKind.SYSTEM,
            name=f"Automação '{firing.rule.name}'",
            rule_execution_id=execution_id,
        ),
        case_id=firing.case.id,
        conversation_id=firing.conversation.id if firing.conversation else None,
        summary=f"Automação '{firing.rule.name}': {text}.",
        data={"rule_id": firing.rule.id, "execution_id": execution_id, "depth": firing.depth},
    )


async def _run_in_savepoint(session: AsyncSession, run: _Run, action: Any) -> Outcome:
    # A failed action's savepoint rolls back; the events it emitted go with it
    # (api.events.service drops them at the savepoint's rollback).
    try:
        async with session.begin_nested():
            outcome = await _run_action(session, run, action)
    except AppError as exc:
        return Outcome("failed", f"não foi possível {describe_action(action)}: {exc.message}")
    except Exception:
        log.exception("automation %s: action %s failed", run.firing.rule.name, action.type)
        return Outcome("failed", f"não foi possível {describe_action(action)}: erro interno")
    run.sends += outcome.sends
    return outcome


async def _schedule(session: AsyncSession, run: _Run, action: Any, position: int) -> Outcome:
    firing = run.firing
    due = firing.calendar.add_business_days(firing.now, action.delay_days)
    session.add(
        ScheduledAction(
            rule_id=firing.rule.id,
            rule_version=firing.rule.row.version,
            execution_id=run.execution.id,
            position=position,
            case_id=firing.case.id,
            conversation_id=firing.conversation.id if firing.conversation else None,
            action=action.model_dump(mode="json"),
            context={"values": firing.values, "trigger_key": firing.trigger_key},
            due_at=due,
            state="pending",
        )
    )
    local = due.astimezone(firing.calendar.tz)
    return Outcome("scheduled", f"agendou {describe_action(action)} para {local:%d/%m/%Y %H:%M}")


async def _record(session: AsyncSession, run: _Run, outcomes: list[Outcome]) -> None:
    firing, execution = run.firing, run.execution
    states = {o.state for o in outcomes}
    if states <= {"done", "scheduled"}:
        state = "done"
    elif states <= {"skipped"}:
        state = "skipped"
    elif states <= {"failed"}:
        state = "failed"
    else:
        state = "partial"
    summary = "; ".join(o.text for o in outcomes)
    execution.state = state
    execution.sends = run.sends
    execution.summary = summary
    execution.detail = {
        "outcomes": [{"state": o.state, "text": o.text} for o in outcomes],
        "about": firing.about,
    }
    prefix = f"Automação '{firing.rule.name}'"
    because = f" ({firing.about})" if firing.about else ""
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=run.actor,
        case_id=firing.case.id,
        conversation_id=firing.conversation.id if firing.conversation else None,
        summary=f"{prefix}{because}: {summary}."[:4000],
        data={
            "rule_id": firing.rule.id,
            "execution_id": execution.id,
            "state": state,
            "trigger": firing.trigger_key,
        },
    )
    emit(
        session,
        ev.RuleFired(
            **about(conversation=firing.conversation, case_id=firing.case.id, actor=run.actor),
            rule=firing.rule.name,
            effect=state,
            detail={
                "rule_id": firing.rule.id,
                "execution_id": execution.id,
                "trigger": firing.trigger_key,
                "subject": firing.subject,
                "depth": firing.depth,
                "sends": run.sends,
            },
        ),
    )


async def run_scheduled_action(
    session: AsyncSession,
    *,
    rule: LoadedRule,
    row: ScheduledAction,
    case: Case,
    conversation: Conversation | None,
    now: dt.datetime,
    calendar: BusinessCalendar,
) -> Outcome:
    """Run one action a firing deferred; on the timeline like the firing itself."""
    if not rule.row.enabled or rule.row.version != row.rule_version:
        return Outcome("cancelled", "regra alterada ou desativada")
    execution = await session.get(AutomationExecution, row.execution_id)
    if execution is None:
        return Outcome("cancelled", "execução removida")
    context = row.context or {}
    firing = Firing(
        rule=rule,
        case=case,
        subject=execution.subject,
        trigger_key=execution.trigger_key,
        now=now,
        calendar=calendar,
        conversation=conversation,
        depth=execution.depth,
        values=dict(context.get("values") or {}),
    )
    actor = RuleActor(
        ActorKind.SYSTEM, name=f"Automação '{rule.name}'", rule_execution_id=execution.id
    )
    run = _Run(firing=firing, actor=actor, execution=execution)
    action: Any = TypeAdapter(Action).validate_python(row.action)
    outcome = await _run_in_savepoint(session, run, action)
    execution.sends += run.sends
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        conversation_id=conversation.id if conversation else None,
        summary=f"Automação '{rule.name}' (agendada): {outcome.text}.",
        data={"rule_id": rule.id, "execution_id": execution.id, "scheduled_id": row.id},
    )
    return outcome


# Actions ------------------------------------------------------------------------------------


async def pick_conversation(
    session: AsyncSession,
    *,
    case: Case,
    preferred: Conversation | None,
    channel: str = "conversation",
) -> Conversation | None:
    """Where a case-level action speaks: the trigger's conversation when it is open (and of the
    channel asked for), else the case's open conversation that heard from the infringer last."""
    if (
        preferred is not None
        and preferred.closed_at is None
        and channel in ("conversation", str(preferred.channel))
    ):
        return preferred
    query = sa.select(Conversation).where(
        Conversation.case_id == case.id, Conversation.closed_at.is_(None)
    )
    if channel != "conversation":
        query = query.where(Conversation.channel == Channel(channel))
    query = query.order_by(
        Conversation.last_inbound_at.desc().nulls_last(), Conversation.id.desc()
    ).limit(1)
    return await session.scalar(query)


async def _run_action(session: AsyncSession, run: _Run, action: Any) -> Outcome:
    firing = run.firing
    if isinstance(action, SendTemplate | SendPaymentDetails):
        return await _send(session, run, action)
    if isinstance(action, MoveStatus):
        return await _move(session, run, action)
    if isinstance(action, AddNote):
        entry = await create_entry(
            session,
            kind=EntryKind.NOTE,
            actor=run.actor,
            case_id=firing.case.id,
            conversation_id=firing.conversation.id if firing.conversation else None,
            summary=action.text,
            data={"note": True, "rule_id": firing.rule.id},
        )
        emit(
            session,
            ev.NoteAdded(
                **about(conversation=firing.conversation, case_id=firing.case.id, actor=run.actor),
                timeline_entry_id=entry.id,
            ),
        )
        return Outcome("done", "adicionou uma nota")
    if isinstance(action, SetFollowUp):
        conversation = await pick_conversation(
            session, case=firing.case, preferred=firing.conversation
        )
        if conversation is None:
            return Outcome("skipped", "não marcou acompanhamento: o caso não tem conversa aberta")
        when = (
            firing.now + dt.timedelta(days=action.days)
            if action.calendar_days
            else firing.calendar.add_business_days(firing.now, action.days)
        )
        await do_set_follow_up(session, conversation=conversation, when=when, actor=run.actor)
        local = when.astimezone(firing.calendar.tz)
        return Outcome("done", f"marcou acompanhamento para {local:%d/%m/%Y %H:%M}")
    if isinstance(action, RaiseAlert):
        return await _raise_alert(session, run, action)
    if isinstance(action, Handoff):
        conversation = await pick_conversation(
            session, case=firing.case, preferred=firing.conversation
        )
        if conversation is None:
            return Outcome("skipped", "não encaminhou: o caso não tem conversa aberta")
        moved = await do_request_handoff(
            session,
            conversation=conversation,
            reason=f"automação '{firing.rule.name}': {action.reason}",
            actor=run.actor,
        )
        if not moved:
            return Outcome("skipped", "não encaminhou: a conversa já está com uma pessoa")
        return Outcome("done", "encaminhou a conversa para atendimento humano")
    if isinstance(action, Assign):
        return await _assign(session, run, action)
    raise AssertionError(f"unknown action {action!r}")  # pragma: no cover


async def _send(
    session: AsyncSession, run: _Run, action: SendTemplate | SendPaymentDetails
) -> Outcome:
    firing = run.firing
    case = firing.case
    channel = action.channel if isinstance(action, SendTemplate) else "conversation"
    conversation = await pick_conversation(
        session, case=case, preferred=firing.conversation, channel=channel
    )
    if conversation is None:
        return Outcome("skipped", f"não enviou {action.template!r}: o caso não tem conversa aberta")
    if (limit := await _check_send_limits(session, run)) is not None:
        return Outcome("skipped", f"não enviou {action.template!r}: {limit}")
    if isinstance(action, SendPaymentDetails):
        prepared = await _prepare_payment(session, run)
        if prepared is not None:
            return prepared
    await do_send_template(
        session,
        conversation=conversation,
        case=case,
        name=action.template,
        actor=run.actor,
        overrides=firing.values or None,
    )
    what = (
        "enviou os dados de pagamento do acordo"
        if isinstance(action, SendPaymentDetails)
        else f"enviou o modelo {action.template!r}"
    )
    return Outcome("done", f"{what} por {channel_label(conversation.channel)}", sends=1)


async def _prepare_payment(session: AsyncSession, run: _Run) -> Outcome | None:
    """Make sure the current payment request states the case's agreement (issue one when it
    does not); an Outcome when the details cannot be sent."""
    case = run.firing.case
    if case.agreed_amount is None:
        return Outcome("skipped", "não enviou os dados de pagamento: o caso não tem acordo")
    installments = case.agreed_installments or 1
    current = await get_current_payment_request(session, case_id=case.id)
    if current is not None and states_terms(
        current, amount=case.agreed_amount, installments=installments
    ):
        return None
    if current is not None and has_payments(current):
        return Outcome(
            "failed",
            "não enviou os dados de pagamento: o pagamento atual tem parcela paga e outros "
            "termos (revisão humana)",
        )
    await do_issue_payment_request(
        session,
        case=case,
        brand=case.brand,
        amount=case.agreed_amount,
        installments=installments,
        provider=get_payment_provider(),
        actor=run.actor,
    )
    return None


async def _move(session: AsyncSession, run: _Run, action: MoveStatus) -> Outcome:
    case = run.firing.case
    if case.status is action.to:
        return Outcome("skipped", f"o caso já está em {status_label(action.to)}")
    previous = case.status
    await do_change_status(
        session,
        case=case,
        target=action.to,
        actor=run.actor,
        reason=action.reason or f"automação '{run.firing.rule.name}'",
        payment_confirmed=_confirms_payment(run, action),
    )
    return Outcome(
        "done", f"moveu o caso de {status_label(previous)} para {status_label(action.to)}"
    )


def _confirms_payment(run: _Run, action: MoveStatus) -> bool:
    """A rule may record PAGO only when its trigger is the payment confirmation itself."""
    trigger = run.firing.rule.spec.trigger
    return (
        action.to is CaseStatus.PAGO
        and isinstance(trigger, EventTrigger)
        and trigger.event == ev.PaymentConfirmed.kind
        and run.firing.event is not None
    )


async def _raise_alert(session: AsyncSession, run: _Run, action: RaiseAlert) -> Outcome:
    """Through the alerts of api.operations: one alert per (kind, subject, cycle), so a rule
    and the alert sweep that see the same fact raise it once."""
    firing = run.firing
    recipient = await owner_of(session, case_id=firing.case.id, conversation=firing.conversation)
    raised = await raise_alerts(
        session,
        [
            AlertSpec(
                kind=action.kind,
                subject=firing.alert_subject or firing.subject,
                cycle=firing.alert_cycle or firing.trigger_key,
                title=f"{action.title or kind_label(action.kind)} — {firing.case.reference}",
                body=firing.about or f"Automação '{firing.rule.name}'.",
                case_id=firing.case.id,
                conversation_id=firing.conversation.id if firing.conversation else None,
                recipient_id=recipient,
                detail={"rule_id": firing.rule.id, "execution_id": run.execution.id},
            )
        ],
        now=firing.now,
    )
    if not raised:
        return Outcome("skipped", f"o alerta {action.kind!r} já tinha sido gerado")
    return Outcome("done", f"gerou o alerta {action.kind!r}")


async def _assign(session: AsyncSession, run: _Run, action: Assign) -> Outcome:
    analyst = await session.get(Analyst, action.analyst_id)
    if analyst is None or not analyst.active:
        return Outcome(
            "failed", f"não atribuiu: analista {action.analyst_id} inativo ou inexistente"
        )
    case = run.firing.case
    previous = case.assignee_id
    if previous == analyst.id:
        return Outcome("skipped", f"{analyst.name} já é o responsável")
    case.assignee_id = analyst.id
    case.updated_at = utcnow()
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=run.actor,
        case_id=case.id,
        summary=f"Responsável pelo caso: {analyst.name} (automação '{run.firing.rule.name}').",
        data={"assignee_id": analyst.id, "previous_assignee_id": previous, "how": "rule"},
    )
    emit(
        session,
        ev.CaseAssigned(
            **about(actor=run.actor, case_id=case.id),
            analyst_id=analyst.id,
            previous_analyst_id=previous,
            how="rule",
        ),
    )
    return Outcome("done", f"atribuiu o caso a {analyst.name}")
