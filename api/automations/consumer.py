"""Event-triggered rules: a durable consumer of the event stream.

The consumer's cursor moves in the transaction that runs the rules' actions, and each firing is
keyed by (rule, case, event) in the ledger: a replayed event, or the same batch handled again
after a crash, fires nothing twice. It starts at the head of the stream on a new install (the
defaults must not act on history).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy.ext.asyncio import AsyncSession

from api.automations.engine import (
    RULES_CACHE_KEY,
    Firing,
    LoadedRule,
    check_conditions,
    fire,
    get_enabled_rules,
    limits,
    record_depth_limit,
)
from api.automations.models import AutomationExecution
from api.automations.schemas import EventTrigger
from api.cases.service import get_case
from api.conversations.models import Conversation
from api.events.consumers import Consumer, register_consumer
from api.events.kinds import EventActorKind
from api.events.service import EventRecord
from api.operations.calendar import BusinessCalendar, load_calendar

NAME = "automations"


async def handle_event(
    session: AsyncSession,
    record: EventRecord,
    *,
    now: dt.datetime | None = None,
    calendar: BusinessCalendar | None = None,
) -> int:
    """Fire the enabled rules triggered by this event; how many fired."""
    fact = record.event
    if fact.case_id is None:
        return 0
    rules = [
        rule
        for rule in await _event_rules(session)
        if isinstance(rule.spec.trigger, EventTrigger) and rule.spec.trigger.event == record.kind
    ]
    if not rules:
        return 0
    depth = 0
    if fact.actor_kind is EventActorKind.RULE:
        rules = [rule for rule in rules if rule.spec.allow_rule_events]
        if not rules:
            return 0
        parent = (
            await session.get(AutomationExecution, fact.actor_id)
            if fact.actor_id is not None
            else None
        )
        depth = (parent.depth if parent is not None else 0) + 1
    case = await get_case(session, case_id=fact.case_id)
    if case is None:
        return 0
    conversation = (
        await session.get(Conversation, fact.conversation_id)
        if fact.conversation_id is not None
        else None
    )
    calendar = calendar or await load_calendar(session)
    max_depth = limits()["max_depth"]
    fired = 0
    for rule in rules:
        firing = Firing(
            rule=rule,
            case=case,
            subject=f"case:{case.id}",
            trigger_key=f"event:{record.id}",
            now=now or fact.occurred_at,
            calendar=calendar,
            conversation=conversation,
            event=record,
            depth=depth,
            about=record.kind,
        )
        if (
            await check_conditions(
                session, rule.spec.conditions, case=case, conversation=conversation, event=record
            )
            is not None
        ):
            continue
        if depth > max_depth:
            await record_depth_limit(session, firing)
            continue
        if await fire(session, firing) is not None:
            fired += 1
    return fired


async def _event_rules(session: AsyncSession) -> list[LoadedRule]:
    """The enabled event rules, read once per transaction (a consumer batch), not per event;
    the rule service drops this when it changes a rule in the same transaction."""
    cached: list[LoadedRule] | None = session.info.get(RULES_CACHE_KEY)
    if cached is None:
        cached = await get_enabled_rules(session, trigger_type="event")
        session.info[RULES_CACHE_KEY] = cached
    return cached


async def _handle(session: AsyncSession, record: EventRecord) -> None:
    await handle_event(session, record)


CONSUMER = register_consumer(Consumer(name=NAME, handle=_handle, start_at_head=True))
