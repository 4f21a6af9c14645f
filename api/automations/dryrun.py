"""Dry run: which rules would fire for a case now, and what they would do. Reads only."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.automations.engine import LoadedRule, check_conditions, load_rule, pick_conversation
from api.automations.models import AutomationExecution, AutomationRule
from api.automations.schemas import (
    DryRunOut,
    DryRunRule,
    EventTrigger,
    PlannedAction,
    SendPaymentDetails,
    SendTemplate,
    TimeTrigger,
    describe_action,
    describe_trigger,
)
from api.automations.subjects import find_candidates
from api.cases.models import Case
from api.cases.service import require_case
from api.conversations.models import Conversation
from api.conversations.outbound import channel_label
from api.errors import AppError
from api.operations.calendar import BusinessCalendar, load_calendar
from api.templates.service import (
    get_template,
    load_templates,
    render_for_conversation,
    variables_for_case,
)


async def get_dry_run(
    session: AsyncSession,
    *,
    case_id: int,
    now: dt.datetime,
    calendar: BusinessCalendar | None = None,
) -> DryRunOut:
    case = await require_case(session, case_id=case_id)
    calendar = calendar or await load_calendar(session)
    await load_templates(session)
    rows = (
        await session.scalars(
            sa.select(AutomationRule)
            .where(AutomationRule.enabled.is_(True))
            .order_by(AutomationRule.id)
        )
    ).all()
    results = [
        await _dry_run_rule(session, load_rule(row), case=case, now=now, calendar=calendar)
        for row in rows
    ]
    return DryRunOut(case_id=case.id, case_reference=case.reference, at=now, rules=results)


async def _dry_run_rule(
    session: AsyncSession,
    rule: LoadedRule,
    *,
    case: Case,
    now: dt.datetime,
    calendar: BusinessCalendar,
) -> DryRunRule:
    trigger = rule.spec.trigger
    conversation = await pick_conversation(session, case=case, preferred=None)
    values: dict[str, str] = {}
    if isinstance(trigger, EventTrigger):
        why = await check_conditions(
            session, rule.spec.conditions, case=case, conversation=conversation, event=None
        )
        reason = (
            f"dispara no próximo evento {trigger.event}; condições do caso atendidas"
            if why is None
            else f"não dispararia: {why}"
        )
        return await _result(
            session, rule, case, conversation, values, would_fire=False, reason=reason
        )
    assert isinstance(trigger, TimeTrigger)
    candidates, _ = await find_candidates(
        session,
        trigger=trigger,
        conditions=rule.spec.conditions,
        calendar=calendar,
        now=now,
        case_id=case.id,
    )
    if not candidates:
        return await _result(
            session,
            rule,
            case,
            conversation,
            values,
            would_fire=False,
            reason=f"nada vencido agora ({describe_trigger(trigger)})",
        )
    candidate = candidates[0]
    if candidate.conversation_id is not None:
        conversation = await session.get(Conversation, candidate.conversation_id)
    values = candidate.values
    fired = await session.scalar(
        sa.select(AutomationExecution.created_at).where(
            AutomationExecution.rule_id == rule.id,
            AutomationExecution.subject == candidate.subject,
            AutomationExecution.trigger_key == candidate.trigger_key,
        )
    )
    if fired is not None:
        local = fired.astimezone(calendar.tz)
        return await _result(
            session,
            rule,
            case,
            conversation,
            values,
            would_fire=False,
            reason=f"já disparou para {candidate.about} em {local:%d/%m/%Y %H:%M}",
        )
    why = await check_conditions(
        session, rule.spec.conditions, case=case, conversation=conversation, event=None
    )
    if why is not None:
        return await _result(
            session, rule, case, conversation, values, would_fire=False, reason=why
        )
    return await _result(
        session,
        rule,
        case,
        conversation,
        values,
        would_fire=True,
        reason=f"dispararia agora: {candidate.about}",
    )


async def _result(
    session: AsyncSession,
    rule: LoadedRule,
    case: Case,
    conversation: Conversation | None,
    values: dict[str, str],
    *,
    would_fire: bool,
    reason: str,
) -> DryRunRule:
    planned: list[PlannedAction] = []
    for action in rule.spec.actions:
        note: str | None = None
        if isinstance(action, SendTemplate | SendPaymentDetails):
            note = await _preview(session, action, case, conversation, values)
        planned.append(
            PlannedAction(
                type=action.type,
                description=describe_action(action),
                would_run=would_fire,
                note=note,
            )
        )
    return DryRunRule(
        rule_id=rule.id,
        rule_name=rule.name,
        trigger=describe_trigger(rule.spec.trigger),
        would_fire=would_fire,
        reason=reason,
        actions=planned,
    )


async def _preview(
    session: AsyncSession,
    action: SendTemplate | SendPaymentDetails,
    case: Case,
    conversation: Conversation | None,
    values: dict[str, str],
) -> str:
    """What the message would say, or why it could not go."""
    channel = action.channel if isinstance(action, SendTemplate) else "conversation"
    target = await pick_conversation(session, case=case, preferred=conversation, channel=channel)
    if target is None:
        return "sem conversa aberta para enviar"
    if isinstance(action, SendPaymentDetails) and case.agreed_amount is None:
        return "o caso não tem acordo: nada seria enviado"
    try:
        variables = {**await variables_for_case(session, case), **values}
        if isinstance(action, SendPaymentDetails):
            # The link is issued at firing time when no request states the agreement yet.
            variables.setdefault("payment_link", "(link emitido no envio)")
        text = render_for_conversation(target, get_template(action.template), variables)
    except AppError as exc:
        return f"não seria enviado: {exc.message}"
    return f"{channel_label(target.channel)} para {target.address}: {text}"
