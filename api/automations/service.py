"""Managing rules: validate (`check_rule`), create, replace, enable/disable, delete, read.

A rule that names an unknown template, a template its channel cannot carry, an unknown event
kind or a status move the lifecycle does not allow is refused with a clear 422 before anything
is stored. Editing or disabling a rule cancels the actions it scheduled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.automations.due import do_cancel_scheduled
from api.automations.engine import RULES_CACHE_KEY, load_rule
from api.automations.models import AutomationExecution, AutomationRule
from api.automations.schemas import (
    Assign,
    EventTrigger,
    MoveStatus,
    RaiseAlert,
    RuleOut,
    RuleSpec,
    SendPaymentDetails,
    SendTemplate,
    TimeTrigger,
    describe_action,
    describe_conditions,
    describe_trigger,
)
from api.cases.lifecycle import (
    HUMAN_ONLY_TARGETS,
    REASON_REQUIRED,
    TRANSITIONS,
    CaseStatus,
    allowed_moves,
    status_label,
)
from api.db import utcnow
from api.errors import Conflict, NotFound, ValidationFailed
from api.events.kinds import KINDS, PaymentConfirmed
from api.operations.kinds import ALERT_KINDS
from api.templates.service import get_template, load_templates


class RuleInvalid(ValidationFailed):
    code = "rule_invalid"


def parse_spec(data: dict[str, Any]) -> RuleSpec:
    """A rule from plain data (CLI, panel form): pydantic's errors as one clear message."""
    try:
        return RuleSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RuleInvalid(f"Regra inválida em {where}: {first['msg']}.") from exc


async def check_rule(session: AsyncSession, spec: RuleSpec) -> None:
    """Raise RuleInvalid (422) when the rule could not do what it says."""
    trigger = spec.trigger
    if isinstance(trigger, EventTrigger):
        if trigger.event not in KINDS:
            raise RuleInvalid(
                f"Evento desconhecido: {trigger.event!r}. Eventos: {', '.join(sorted(KINDS))}."
            )
    else:
        _check_time_trigger(spec, trigger)
    conditions = spec.conditions
    if (
        conditions.min_amount is not None
        and conditions.max_amount is not None
        and conditions.min_amount > conditions.max_amount
    ):
        raise RuleInvalid("O valor mínimo das condições é maior que o máximo.")
    # Where a status move starts from: the statuses the conditions allow (or, on a status
    # change, the statuses it goes to), else anywhere.
    sources = set(conditions.statuses) or set(TRANSITIONS)
    # Templates live in the database (edited by admins) over the YAML seed.
    await load_templates(session)
    if isinstance(trigger, EventTrigger) and conditions.to_statuses:
        sources = set(conditions.to_statuses)
    for action in spec.actions:
        if isinstance(action, SendTemplate | SendPaymentDetails):
            _check_template(spec, action)
        elif isinstance(action, MoveStatus):
            _check_move(spec, action, sources)
            sources = {action.to}
        elif isinstance(action, RaiseAlert) and action.kind not in ALERT_KINDS:
            raise RuleInvalid(
                f"Tipo de alerta desconhecido: {action.kind!r}. Tipos: "
                f"{', '.join(sorted(ALERT_KINDS))}."
            )
        elif isinstance(action, Assign):
            analyst = await session.get(Analyst, action.analyst_id)
            if analyst is None or not analyst.active:
                raise RuleInvalid(f"Analista {action.analyst_id} não existe ou está inativo.")


def _check_time_trigger(spec: RuleSpec, trigger: TimeTrigger) -> None:
    if trigger.anchor == "event":
        if trigger.event not in KINDS:
            raise RuleInvalid(f"Evento desconhecido no gatilho de tempo: {trigger.event!r}.")
        unknown = [kind for kind in trigger.without if kind not in KINDS]
        if unknown:
            raise RuleInvalid(f"Eventos desconhecidos em 'sem': {', '.join(unknown)}.")
    elif trigger.event is not None or trigger.without:
        raise RuleInvalid("'event' e 'without' só valem para o gatilho de tempo 'event'.")
    if trigger.anchor == "status_since" and not spec.conditions.statuses:
        raise RuleInvalid("O gatilho 'status_since' precisa dos status nas condições.")


def _check_template(spec: RuleSpec, action: SendTemplate | SendPaymentDetails) -> None:
    try:
        template = get_template(action.template)
    except NotFound as exc:
        raise RuleInvalid(f"Modelo de mensagem desconhecido: {action.template!r}.") from exc
    available = {str(c) for c in template.channels}
    asked = (
        {action.channel}
        if isinstance(action, SendTemplate) and action.channel != "conversation"
        else {str(c) for c in spec.conditions.channels}
    )
    refused = sorted(asked - available)
    if refused:
        raise RuleInvalid(
            f"O modelo {action.template!r} não serve para o canal {', '.join(refused)} "
            f"(serve para {', '.join(sorted(available))})."
        )


def _check_move(spec: RuleSpec, action: MoveStatus, sources: set[CaseStatus]) -> None:
    target = action.to
    trigger = spec.trigger
    confirms_payment = (
        target is CaseStatus.PAGO
        and isinstance(trigger, EventTrigger)
        and trigger.event == PaymentConfirmed.kind
    )
    if target in HUMAN_ONLY_TARGETS and not confirms_payment:
        raise RuleInvalid(
            f"Uma automação não pode mover o caso para {status_label(target)}: "
            "somente um analista faz essa mudança."
        )
    if target in REASON_REQUIRED and not (action.reason and action.reason.strip()):
        raise RuleInvalid(f"Informe o motivo para mover o caso para {status_label(target)}.")
    # A rule whose action moves to the status it is already in does nothing (no error).
    illegal = sorted(
        (s for s in sources if s is not target and target not in allowed_moves(s)),
        key=list(CaseStatus).index,
    )
    narrowed = bool(spec.conditions.statuses or spec.conditions.to_statuses)
    if illegal and (narrowed or len(illegal) == len(sources)):
        source = illegal[0]
        allowed = ", ".join(status_label(s) for s in sorted(allowed_moves(source))) or "nenhuma"
        raise RuleInvalid(
            f"Transição de status não permitida: {status_label(source)} → "
            f"{status_label(target)}. A partir de {status_label(source)} são permitidas: "
            f"{allowed}."
        )


# Reading ------------------------------------------------------------------------------------


def rule_out(rule: AutomationRule) -> RuleOut:
    loaded = load_rule(rule)
    spec = loaded.spec
    summary = (
        f"{describe_trigger(spec.trigger)}; se {describe_conditions(spec.conditions)}: "
        + "; ".join(describe_action(a) for a in spec.actions)
    )
    return RuleOut(
        id=rule.id,
        name=rule.name,
        description=rule.description,
        enabled=rule.enabled,
        builtin_key=rule.builtin_key,
        trigger=rule.trigger,
        conditions=rule.conditions or {},
        actions=rule.actions,
        allow_rule_events=rule.allow_rule_events,
        version=rule.version,
        updated_at=rule.updated_at,
        summary=summary,
    )


async def get_all_rules(session: AsyncSession) -> Sequence[AutomationRule]:
    return (await session.scalars(sa.select(AutomationRule).order_by(AutomationRule.id))).all()


async def require_rule(session: AsyncSession, *, rule_id: int) -> AutomationRule:
    rule = await session.get(AutomationRule, rule_id)
    if rule is None:
        raise NotFound(f"Regra {rule_id} não encontrada.")
    return rule


async def get_rule_by_name(session: AsyncSession, *, name: str) -> AutomationRule | None:
    return await session.scalar(sa.select(AutomationRule).where(AutomationRule.name == name))


async def get_executions(
    session: AsyncSession,
    *,
    case_id: int | None = None,
    rule_id: int | None = None,
    limit: int = 100,
) -> Sequence[tuple[AutomationExecution, str]]:
    """The ledger, newest first, with each rule's name."""
    query = sa.select(AutomationExecution, AutomationRule.name).join(
        AutomationRule, AutomationRule.id == AutomationExecution.rule_id
    )
    if case_id is not None:
        query = query.where(AutomationExecution.case_id == case_id)
    if rule_id is not None:
        query = query.where(AutomationExecution.rule_id == rule_id)
    rows = (await session.execute(query.order_by(AutomationExecution.id.desc()).limit(limit))).all()
    return [(row[0], row[1]) for row in rows]


# Changing -----------------------------------------------------------------------------------


def _forget_cached_rules(session: AsyncSession) -> None:
    session.info.pop(RULES_CACHE_KEY, None)


def _store(rule: AutomationRule, spec: RuleSpec, analyst: Analyst | None) -> None:
    data = spec.model_dump(mode="json")
    rule.name = spec.name
    rule.description = spec.description
    rule.enabled = spec.enabled
    rule.trigger = data["trigger"]
    rule.conditions = {k: v for k, v in data["conditions"].items() if v not in ((), [], None)}
    rule.actions = data["actions"]
    rule.allow_rule_events = spec.allow_rule_events
    rule.updated_at = utcnow()
    rule.updated_by_id = analyst.id if analyst is not None else None


async def _check_name_free(session: AsyncSession, name: str, *, rule_id: int | None = None) -> None:
    other = await get_rule_by_name(session, name=name)
    if other is not None and other.id != rule_id:
        raise Conflict(f"Já existe uma regra chamada {name!r}.")


async def create_rule(
    session: AsyncSession, *, spec: RuleSpec, analyst: Analyst | None
) -> AutomationRule:
    await check_rule(session, spec)
    await _check_name_free(session, spec.name)
    rule = AutomationRule(version=1)
    _store(rule, spec, analyst)
    _forget_cached_rules(session)
    session.add(rule)
    await session.flush()
    return rule


async def do_update_rule(
    session: AsyncSession, *, rule: AutomationRule, spec: RuleSpec, analyst: Analyst | None
) -> AutomationRule:
    """Replace the rule's definition; what its previous version scheduled is cancelled."""
    await check_rule(session, spec)
    await _check_name_free(session, spec.name, rule_id=rule.id)
    _store(rule, spec, analyst)
    _forget_cached_rules(session)
    rule.version += 1
    await do_cancel_scheduled(session, rule_id=rule.id, reason="regra alterada")
    await session.flush()
    return rule


async def do_set_enabled(
    session: AsyncSession, *, rule: AutomationRule, enabled: bool, analyst: Analyst | None
) -> AutomationRule:
    if rule.enabled == enabled:
        return rule
    rule.enabled = enabled
    _forget_cached_rules(session)
    rule.updated_at = utcnow()
    rule.updated_by_id = analyst.id if analyst is not None else None
    if not enabled:
        await do_cancel_scheduled(session, rule_id=rule.id, reason="regra desativada")
    await session.flush()
    return rule


async def do_delete_rule(session: AsyncSession, *, rule: AutomationRule) -> None:
    """Delete an admin's rule (its ledger goes with it); a shipped default is disabled instead."""
    if rule.builtin_key is not None:
        raise Conflict("Regras padrão não são excluídas: desative-as.")
    _forget_cached_rules(session)
    await do_cancel_scheduled(session, rule_id=rule.id, reason="regra excluída")
    await session.delete(rule)
    await session.flush()
