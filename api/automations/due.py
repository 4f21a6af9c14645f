"""Time-based rules: one evaluation pass as of a given moment.

`run_due_rules(now)` is what the worker runs every minute and `tratativa operations run-due
[--at …]` runs once: every enabled time rule over the subjects whose timer has run out at
`now`, then the scheduled actions that have come due. The ledger makes a second pass for the
same moment (or a pass running beside another worker) change nothing.
"""

from __future__ import annotations

import datetime as dt
import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.automations.engine import (
    Firing,
    LoadedRule,
    Outcome,
    check_conditions,
    fire,
    get_enabled_rules,
    load_rule,
    run_scheduled_action,
)
from api.automations.models import AutomationExecution, AutomationRule, ScheduledAction
from api.automations.schemas import TimeTrigger
from api.automations.subjects import (
    BATCH,
    Candidate,
    find_candidates,
    load_cases,
    load_conversations,
)
from api.cases.tags import get_tags_of_cases
from api.db import unit_of_work, utcnow
from api.operations.calendar import BusinessCalendar, load_calendar

log = logging.getLogger(__name__)
# Firings per transaction in the worker's pass.
FIRE_CHUNK = 20


async def run_due_rules(
    now: dt.datetime, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> int:
    """Evaluate every time-based rule as of `now`; return how many actions were taken.
    Running it twice for the same moment takes no action the second time."""
    async with unit_of_work(maker) as session:
        rules = await get_enabled_rules(session, trigger_type="time")
        calendar = await load_calendar(session)
    taken = 0
    # Rules act on infringers only while the firm is open: what came due at night or on a
    # holiday waits for the next opening.
    if not calendar.is_open(now):
        rules = []
    for rule in rules:
        after: int | None = 0
        while after is not None:
            # Read a page of due subjects, then fire them a few per transaction: a first pass
            # over a large backlog never holds one long write transaction (which would hold
            # back the event consumers); the ledger keeps each firing single.
            async with unit_of_work(maker) as session:
                fresh, after = await get_due_page(
                    session, rule=rule, now=now, calendar=calendar, after_id=after
                )
            for start in range(0, len(fresh), FIRE_CHUNK):
                async with unit_of_work(maker) as session:
                    taken += await do_fire_candidates(
                        session,
                        rule=rule,
                        candidates=fresh[start : start + FIRE_CHUNK],
                        now=now,
                        calendar=calendar,
                    )
    while True:
        async with unit_of_work(maker) as session:
            done = await do_run_scheduled(session, now=now, calendar=calendar, limit=BATCH)
        taken += done
        if done < BATCH:
            break
    return taken


async def do_run_due_rules(
    session: AsyncSession, *, now: dt.datetime, calendar: BusinessCalendar | None = None
) -> int:
    """The same pass inside the caller's transaction (tests, dry runs of the whole sweep)."""
    calendar = calendar or await load_calendar(session)
    taken = 0
    rules = await get_enabled_rules(session, trigger_type="time")
    for rule in rules if calendar.is_open(now) else []:
        after: int | None = 0
        while after is not None:
            fired, after = await sweep_rule_page(
                session, rule=rule, now=now, calendar=calendar, after_id=after
            )
            taken += fired
    taken += await do_run_scheduled(session, now=now, calendar=calendar)
    return taken


async def get_due_page(
    session: AsyncSession,
    *,
    rule: LoadedRule,
    now: dt.datetime,
    calendar: BusinessCalendar,
    after_id: int = 0,
    limit: int = BATCH,
) -> tuple[list[Candidate], int | None]:
    """One page of subjects due for `rule` that the ledger does not have yet; (them, where
    the next page starts or None)."""
    trigger = rule.spec.trigger
    assert isinstance(trigger, TimeTrigger)
    candidates, next_after = await find_candidates(
        session,
        trigger=trigger,
        conditions=rule.spec.conditions,
        calendar=calendar,
        now=now,
        after_id=after_id,
        limit=limit,
        rule_id=rule.id,
    )
    return await _not_fired(session, rule, candidates), next_after


async def do_fire_candidates(
    session: AsyncSession,
    *,
    rule: LoadedRule,
    candidates: list[Candidate],
    now: dt.datetime,
    calendar: BusinessCalendar,
    dry: bool = False,
) -> int:
    """Fire `rule` on the candidates whose case meets its conditions; the actions taken
    (`dry`: fire nothing, count the subjects it would fire on)."""
    if not candidates:
        return 0
    cases = await load_cases(session, [c.case_id for c in candidates])
    conversations = await load_conversations(
        session, [c.conversation_id for c in candidates if c.conversation_id is not None]
    )
    tags = (
        await get_tags_of_cases(session, case_ids=list(cases))
        if rule.spec.conditions.tags
        else None
    )
    taken = 0
    for candidate in candidates:
        case = cases.get(candidate.case_id)
        if case is None:
            continue
        conversation = (
            conversations.get(candidate.conversation_id) if candidate.conversation_id else None
        )
        if (
            await check_conditions(
                session,
                rule.spec.conditions,
                case=case,
                conversation=conversation,
                event=None,
                tags=tags,
            )
            is not None
        ):
            continue
        if dry:
            taken += 1
            continue
        execution = await fire(
            session,
            Firing(
                rule=rule,
                case=case,
                subject=candidate.subject,
                trigger_key=candidate.trigger_key,
                now=now,
                calendar=calendar,
                conversation=conversation,
                values=candidate.values,
                about=candidate.about,
                alert_subject=candidate.alert_subject,
                alert_cycle=candidate.alert_cycle,
            ),
        )
        if execution is not None:
            taken += len(rule.spec.actions)
    return taken


async def sweep_rule_page(
    session: AsyncSession,
    *,
    rule: LoadedRule,
    now: dt.datetime,
    calendar: BusinessCalendar,
    after_id: int = 0,
    limit: int = BATCH,
    dry: bool = False,
) -> tuple[int, int | None]:
    """Fire `rule` on one page of due subjects in the caller's transaction; (actions taken,
    next page start or None). `dry`: fire nothing, count the subjects it would fire on."""
    fresh, next_after = await get_due_page(
        session, rule=rule, now=now, calendar=calendar, after_id=after_id, limit=limit
    )
    if dry and not _needs_case_check(rule):
        return len(fresh), next_after
    taken = await do_fire_candidates(
        session, rule=rule, candidates=fresh, now=now, calendar=calendar, dry=dry
    )
    return taken, next_after


async def evaluate_due_rules(
    now: dt.datetime, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> dict[str, int]:
    """How many subjects each time rule would fire on at `now`; changes nothing."""
    async with unit_of_work(maker) as session:
        rules = await get_enabled_rules(session, trigger_type="time")
        calendar = await load_calendar(session)
    due: dict[str, int] = {}
    for rule in rules:
        count = 0
        after: int | None = 0
        while after is not None:
            async with unit_of_work(maker) as session:
                found, after = await sweep_rule_page(
                    session, rule=rule, now=now, calendar=calendar, after_id=after, dry=True
                )
            count += found
        due[rule.name] = count
    return due


def _needs_case_check(rule: LoadedRule) -> bool:
    """Whether the conditions ask more than the finders already applied in SQL (statuses;
    channels for conversation subjects)."""
    conditions = rule.spec.conditions
    assert isinstance(rule.spec.trigger, TimeTrigger)
    asked = conditions.model_dump(exclude_defaults=True)
    asked.pop("statuses", None)
    if rule.spec.trigger.anchor == "unanswered":
        asked.pop("channels", None)
    return bool(asked)


async def _not_fired(
    session: AsyncSession, rule: LoadedRule, candidates: list[Candidate]
) -> list[Candidate]:
    """Leave out the candidates the ledger already has (one query per page, not per row)."""
    if not candidates:
        return []
    rows = await session.execute(
        sa.select(AutomationExecution.subject, AutomationExecution.trigger_key).where(
            AutomationExecution.rule_id == rule.id,
            AutomationExecution.subject.in_(sorted({c.subject for c in candidates})),
        )
    )
    seen = {(r[0], r[1]) for r in rows}
    return [c for c in candidates if (c.subject, c.trigger_key) not in seen]


async def do_run_scheduled(
    session: AsyncSession,
    *,
    now: dt.datetime,
    calendar: BusinessCalendar,
    limit: int = BATCH,
) -> int:
    """Run the scheduled actions due at `now` (each once: the row is claimed FOR UPDATE SKIP
    LOCKED and marked finished in the same transaction)."""
    query = (
        sa.select(ScheduledAction)
        .where(ScheduledAction.state == "pending", ScheduledAction.due_at <= now)
        .order_by(ScheduledAction.due_at, ScheduledAction.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = (await session.scalars(query)).all()
    if not rows:
        return 0
    cases = await load_cases(session, [r.case_id for r in rows if r.case_id is not None])
    conversations = await load_conversations(
        session, [r.conversation_id for r in rows if r.conversation_id is not None]
    )
    done = 0
    for row in rows:
        rule_row = await session.get(AutomationRule, row.rule_id)
        case = cases.get(row.case_id) if row.case_id is not None else None
        if rule_row is None or case is None:
            row.state, row.finished_at, row.result = "cancelled", utcnow(), "regra ou caso removido"
            continue
        outcome: Outcome = await run_scheduled_action(
            session,
            rule=load_rule(rule_row),
            row=row,
            case=case,
            conversation=conversations.get(row.conversation_id) if row.conversation_id else None,
            now=now,
            calendar=calendar,
        )
        row.state = outcome.state
        row.finished_at = utcnow()
        row.result = outcome.text
        done += 1
    return done


async def do_cancel_scheduled(session: AsyncSession, *, rule_id: int, reason: str) -> int:
    """Cancel what a rule scheduled and has not run yet (the rule was edited or disabled)."""
    result = await session.execute(
        sa.update(ScheduledAction)
        .where(ScheduledAction.rule_id == rule_id, ScheduledAction.state == "pending")
        .values(state="cancelled", finished_at=utcnow(), result=reason)
    )
    return int(getattr(result, "rowcount", 0) or 0)
