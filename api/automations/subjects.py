"""What a time trigger is about: the subjects whose timer has run out at a given moment.

Each finder narrows in SQL with a calendar bound (N business days are at least N calendar days,
so anything newer than `now - N days` cannot be due), then the business calendar decides
exactly, per candidate. A candidate carries its cycle key: one silence, one deadline, one due
date — the ledger makes a rule fire once per cycle, and a moved deadline is a new cycle.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.automations.models import AutomationExecution
from api.automations.schemas import Conditions, TimeTrigger
from api.cases.lifecycle import OPEN_STATUSES
from api.cases.models import Case
from api.conversations.models import Conversation, DeliveryStatus, Direction, Message
from api.events.models import StoredEvent
from api.identifiers.money import format_brl
from api.operations.calendar import BusinessCalendar
from api.payments.models import Installment, InstallmentStatus, PaymentRequest

BATCH = 1000
_NOT_SENT = (DeliveryStatus.FAILED, DeliveryStatus.UNDELIVERED, DeliveryStatus.PENDING)


@dataclass
class Candidate:
    case_id: int
    subject: str
    trigger_key: str
    anchor_at: dt.datetime
    conversation_id: int | None = None
    values: dict[str, str] = field(default_factory=dict)
    about: str = ""
    alert_subject: str | None = None
    alert_cycle: str | None = None


def due_after(calendar: BusinessCalendar, trigger: TimeTrigger, anchor: dt.datetime) -> dt.datetime:
    """When the timer started at `anchor` runs out: the time counted, then the next open
    moment of the calendar (rules never act on infringers at night or on a holiday)."""
    key = (trigger.days, trigger.calendar_days, anchor)
    memo = _memo_for(calendar)
    found = memo.get(key)
    if found is None:
        if trigger.calendar_days:
            ends = anchor + dt.timedelta(days=trigger.days)
        else:
            ends = calendar.add_business_days(anchor, trigger.days)
        found = memo[key] = calendar.next_open(ends)
    return found


# Day anchors (deadlines, due dates) repeat across thousands of subjects: each is computed once
# per calendar (the last one used; a new calendar starts afresh).
_MEMO: dict[str, Any] = {"calendar": None, "values": {}}
_MEMO_MAX = 100_000


def _memo_for(calendar: BusinessCalendar) -> dict[tuple[int, bool, dt.datetime], dt.datetime]:
    if _MEMO["calendar"] is not calendar or len(_MEMO["values"]) > _MEMO_MAX:
        _MEMO["calendar"], _MEMO["values"] = calendar, {}
    values: dict[tuple[int, bool, dt.datetime], dt.datetime] = _MEMO["values"]
    return values


def surely_due(trigger: TimeTrigger, anchor: dt.datetime, now: dt.datetime) -> bool:
    """A cheap bound: N business days and the wait for an open moment never take longer than
    this (weekends, a run of holidays), so older anchors are due without asking the calendar."""
    bound = trigger.days + (trigger.days * 2) // 5 + 2 + 14
    return anchor + dt.timedelta(days=bound) <= now


def end_of_day(calendar: BusinessCalendar, day: dt.date) -> dt.datetime:
    """The first moment after `day` ends in the calendar's time zone (UTC)."""
    return dt.datetime.combine(
        day + dt.timedelta(days=1), dt.time(0), tzinfo=calendar.tz
    ).astimezone(dt.UTC)


def _statuses(conditions: Conditions) -> list[str]:
    return [str(s) for s in (conditions.statuses or tuple(OPEN_STATUSES))]


def _aware(value: dt.datetime | str) -> dt.datetime:
    """Aggregates bypass the column type on SQLite: max() comes back naive (or as text)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


async def find_candidates(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int = 0,
    limit: int = BATCH,
    case_id: int | None = None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """One page of due subjects (ordered by their row id, from `after_id`) and where the next
    page starts (None: this was the last). With `rule_id`, subjects the rule already acted on
    for their current cycle are left out in SQL (the ledger has the final say anyway)."""
    finder = _FINDERS[trigger.anchor]
    return await finder(
        session,
        trigger=trigger,
        conditions=conditions,
        calendar=calendar,
        now=now,
        after_id=after_id,
        limit=limit,
        case_id=case_id,
        rule_id=rule_id,
    )


def _fired(
    rule_id: int, subject: sa.ColumnElement[str], trigger_key: sa.ColumnElement[str] | None = None
) -> sa.Exists:
    """The ledger already has (rule, subject[, trigger]) — the unique index answers it."""
    query = sa.select(sa.literal(1)).where(
        AutomationExecution.rule_id == rule_id, AutomationExecution.subject == subject
    )
    if trigger_key is not None:
        query = query.where(AutomationExecution.trigger_key == trigger_key)
    return sa.exists(query)


def _text(prefix: str, column: Any) -> sa.ColumnElement[str]:
    return sa.literal(prefix) + sa.cast(column, sa.String)


def _next(rows: Sequence[object], limit: int, last_id: int) -> int | None:
    return last_id if len(rows) >= limit else None


async def _unanswered(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int,
    limit: int,
    case_id: int | None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """Open conversations whose last message of ours that left us has had no answer (an
    auto-reply or a bounce is not one) since; one cycle per silence (the last answer's id)."""
    cutoff = now - dt.timedelta(days=trigger.days)
    query = (
        sa.select(Conversation.id, Conversation.case_id, Conversation.last_outbound_at)
        .join(Case, Case.id == Conversation.case_id)
        .where(
            Conversation.id > after_id,
            Conversation.closed_at.is_(None),
            Conversation.last_outbound_at <= cutoff,
            Case.status.in_(_statuses(conditions)),
        )
        .order_by(Conversation.id)
        .limit(limit)
    )
    if conditions.channels:
        query = query.where(Conversation.channel.in_([str(c) for c in conditions.channels]))
    if case_id is not None:
        query = query.where(Conversation.case_id == case_id)
    # Answered since our last message (an auto-reply or a bounce is not an answer): not silent.
    answered_since = sa.exists(
        sa.select(sa.literal(1)).where(
            Message.conversation_id == Conversation.id,
            Message.direction == Direction.INBOUND,
            Message.created_at >= Conversation.last_outbound_at,
            sa.or_(Message.meta.is_(None), Message.meta["answerable"].as_boolean().is_not(False)),
        )
    )
    query = query.where(~answered_since)
    if rule_id is not None:
        # Fired since the infringer last wrote: still the same silence (a new silence needs a
        # new message from them). A prefilter only; the cycle key below is exact.
        fired_in_silence = sa.exists(
            sa.select(sa.literal(1)).where(
                AutomationExecution.rule_id == rule_id,
                AutomationExecution.subject == _text("conversation:", Conversation.id),
                sa.or_(
                    Conversation.last_inbound_at.is_(None),
                    AutomationExecution.created_at >= Conversation.last_inbound_at,
                ),
            )
        )
        query = query.where(~fired_in_silence)
    rows = (await session.execute(query)).all()
    if not rows:
        return [], None
    ids = [r[0] for r in rows]
    case_of: dict[int, int] = {r[0]: r[1] for r in rows if r[1] is not None}
    stamp_of = {r[0]: r[2] for r in rows}
    last_out = dict(
        (
            await session.execute(
                sa.select(Message.conversation_id, sa.func.max(Message.created_at))
                .where(
                    Message.conversation_id.in_(ids),
                    Message.direction == Direction.OUTBOUND,
                    Message.delivery_status.not_in(_NOT_SENT),
                )
                .group_by(Message.conversation_id)
            )
        ).all()
    )
    answered = Message.meta["answerable"].as_boolean().is_not(False)
    last_in = {
        row[0]: (row[1], row[2])
        for row in (
            await session.execute(
                sa.select(
                    Message.conversation_id,
                    sa.func.max(Message.id),
                    sa.func.max(Message.created_at),
                )
                .where(
                    Message.conversation_id.in_(ids),
                    Message.direction == Direction.INBOUND,
                    sa.or_(Message.meta.is_(None), answered),
                )
                .group_by(Message.conversation_id)
            )
        ).all()
    }
    found: list[Candidate] = []
    for conversation_id in ids:
        sent = last_out.get(conversation_id)
        if sent is None:
            continue
        sent_at = _aware(sent)
        reply_id, reply_at = last_in.get(conversation_id, (None, None))
        if reply_at is not None and _aware(reply_at) >= sent_at:
            continue
        if not surely_due(trigger, sent_at, now) and due_after(calendar, trigger, sent_at) > now:
            continue
        found.append(
            Candidate(
                case_id=case_of[conversation_id],
                conversation_id=conversation_id,
                subject=f"conversation:{conversation_id}",
                trigger_key=f"silence:{reply_id or 0}",
                anchor_at=sent_at,
                about=f"sem resposta desde {sent_at.astimezone(calendar.tz):%d/%m/%Y %H:%M}",
                # The alert sweep's identity of the same silence (api/operations/due.py).
                alert_subject=f"conv:{conversation_id}",
                alert_cycle=f"t{int((stamp_of[conversation_id] or sent_at).timestamp())}",
            )
        )
    return found, _next(rows, limit, ids[-1])


async def _notice_deadline(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int,
    limit: int,
    case_id: int | None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """Cases whose notice's response deadline has ended with no answer from the infringer
    since the notice; one cycle per deadline (a moved deadline re-arms)."""
    latest_day = (now - dt.timedelta(days=trigger.days + 1)).astimezone(calendar.tz).date()
    query = (
        sa.select(Case.id, Case.response_deadline, Case.notice_sent_at)
        .where(
            Case.id > after_id,
            Case.response_deadline.is_not(None),
            Case.response_deadline <= latest_day + dt.timedelta(days=1),
            Case.status.in_(_statuses(conditions)),
        )
        .order_by(Case.id)
        .limit(limit)
    )
    if case_id is not None:
        query = query.where(Case.id == case_id)
    if rule_id is not None:
        query = query.where(
            ~_fired(rule_id, _text("case:", Case.id), _text("deadline:", Case.response_deadline))
        )
    rows = (await session.execute(query)).all()
    if not rows:
        return [], None
    ids = [r[0] for r in rows]
    answered = Message.meta["answerable"].as_boolean().is_not(False)
    last_in = dict(
        (
            await session.execute(
                sa.select(Message.case_id, sa.func.max(Message.created_at))
                .where(
                    Message.case_id.in_(ids),
                    Message.direction == Direction.INBOUND,
                    sa.or_(Message.meta.is_(None), answered),
                )
                .group_by(Message.case_id)
            )
        ).all()
    )
    found: list[Candidate] = []
    for row_case_id, deadline, notice_sent_at in rows:
        assert deadline is not None  # filtered in SQL
        reply = last_in.get(row_case_id)
        if reply is not None and (notice_sent_at is None or _aware(reply) >= notice_sent_at):
            continue
        ends = end_of_day(calendar, deadline)
        if not surely_due(trigger, ends, now) and due_after(calendar, trigger, ends) > now:
            continue
        found.append(
            Candidate(
                case_id=row_case_id,
                subject=f"case:{row_case_id}",
                trigger_key=f"deadline:{deadline.isoformat()}",
                anchor_at=end_of_day(calendar, deadline),
                about=f"prazo de resposta {deadline:%d/%m/%Y} vencido",
            )
        )
    return found, _next(rows, limit, ids[-1])


async def _installment_due(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int,
    limit: int,
    case_id: int | None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """Unpaid installments of a current payment request whose due date has ended; one cycle
    per due date."""
    latest_day = (now - dt.timedelta(days=trigger.days)).astimezone(calendar.tz).date()
    query = (
        sa.select(
            Installment.id,
            Installment.number,
            Installment.amount,
            Installment.due_date,
            PaymentRequest.case_id,
        )
        .join(PaymentRequest, PaymentRequest.id == Installment.payment_request_id)
        .join(Case, Case.id == PaymentRequest.case_id)
        .where(
            Installment.id > after_id,
            Installment.status.in_([InstallmentStatus.OPEN, InstallmentStatus.OVERDUE]),
            Installment.due_date < latest_day,
            PaymentRequest.superseded_at.is_(None),
            Case.status.in_(_statuses(conditions)),
        )
        .order_by(Installment.id)
        .limit(limit)
    )
    if case_id is not None:
        query = query.where(PaymentRequest.case_id == case_id)
    if rule_id is not None:
        query = query.where(
            ~_fired(
                rule_id,
                _text("installment:", Installment.id),
                _text("due:", Installment.due_date),
            )
        )
    rows = (await session.execute(query)).all()
    if not rows:
        return [], None
    found: list[Candidate] = []
    for installment in rows:
        row_case_id = installment.case_id
        anchor = end_of_day(calendar, installment.due_date)
        if not surely_due(trigger, anchor, now) and due_after(calendar, trigger, anchor) > now:
            continue
        found.append(
            Candidate(
                case_id=row_case_id,
                subject=f"installment:{installment.id}",
                trigger_key=f"due:{installment.due_date.isoformat()}",
                anchor_at=anchor,
                values={
                    "installment_number": str(installment.number),
                    "installment_amount": format_brl(installment.amount),
                    "due_date": installment.due_date.strftime("%d/%m/%Y"),
                },
                about=(
                    f"parcela {installment.number} de {format_brl(installment.amount)} "
                    f"vencida em {installment.due_date:%d/%m/%Y}"
                ),
                alert_subject=f"inst:{installment.id}",
                alert_cycle=installment.due_date.isoformat(),
            )
        )
    return found, _next(rows, limit, rows[-1][0])


async def _status_since(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int,
    limit: int,
    case_id: int | None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """Cases still in the status they entered N days ago; one cycle per entry."""
    cutoff = now - dt.timedelta(days=trigger.days)
    query = (
        sa.select(Case.id, Case.status, Case.status_changed_at)
        .where(
            Case.id > after_id,
            Case.status.in_(_statuses(conditions)),
            Case.status_changed_at.is_not(None),
            Case.status_changed_at <= cutoff,
        )
        .order_by(Case.id)
        .limit(limit)
    )
    if case_id is not None:
        query = query.where(Case.id == case_id)
    rows = (await session.execute(query)).all()
    if not rows:
        return [], None
    found: list[Candidate] = []
    for row_case_id, status, changed_at in rows:
        assert changed_at is not None  # filtered in SQL
        if (
            not surely_due(trigger, changed_at, now)
            and due_after(calendar, trigger, changed_at) > now
        ):
            continue
        found.append(
            Candidate(
                case_id=row_case_id,
                subject=f"case:{row_case_id}",
                trigger_key=f"status:{status}:{changed_at.isoformat()}",
                anchor_at=changed_at,
                about=f"em {status} desde {changed_at.astimezone(calendar.tz):%d/%m/%Y}",
            )
        )
    return found, _next(rows, limit, rows[-1][0])


async def _after_event(
    session: AsyncSession,
    *,
    trigger: TimeTrigger,
    conditions: Conditions,
    calendar: BusinessCalendar,
    now: dt.datetime,
    after_id: int,
    limit: int,
    case_id: int | None,
    rule_id: int | None = None,
) -> tuple[list[Candidate], int | None]:
    """Cases whose last `event` is N days old with none of `without` after it; one cycle per
    event."""
    assert trigger.event is not None
    cutoff = now - dt.timedelta(days=trigger.days)
    last = (
        sa.select(
            StoredEvent.case_id.label("case_id"),
            sa.func.max(StoredEvent.id).label("event_id"),
        )
        .where(StoredEvent.kind == trigger.event, StoredEvent.case_id.is_not(None))
        .group_by(StoredEvent.case_id)
        .subquery()
    )
    query = (
        sa.select(Case.id, StoredEvent.id, StoredEvent.occurred_at)
        .join(last, last.c.case_id == Case.id)
        .join(StoredEvent, StoredEvent.id == last.c.event_id)
        .where(
            Case.id > after_id,
            Case.status.in_(_statuses(conditions)),
            StoredEvent.occurred_at <= cutoff,
        )
        .order_by(Case.id)
        .limit(limit)
    )
    if trigger.without:
        later = sa.select(sa.literal(1)).where(
            StoredEvent.case_id == Case.id,
            StoredEvent.kind.in_(list(trigger.without)),
            StoredEvent.id > last.c.event_id,
        )
        query = query.where(~sa.exists(later.correlate(Case, last)))
    if case_id is not None:
        query = query.where(Case.id == case_id)
    rows = (await session.execute(query)).all()
    if not rows:
        return [], None
    found: list[Candidate] = []
    for row_case_id, event_id, occurred_at in rows:
        if (
            not surely_due(trigger, occurred_at, now)
            and due_after(calendar, trigger, occurred_at) > now
        ):
            continue
        found.append(
            Candidate(
                case_id=row_case_id,
                subject=f"case:{row_case_id}",
                trigger_key=f"event:{event_id}",
                anchor_at=occurred_at,
                about=f"{trigger.event} em {occurred_at.astimezone(calendar.tz):%d/%m/%Y %H:%M}",
            )
        )
    return found, _next(rows, limit, rows[-1][0])


_FINDERS = {
    "unanswered": _unanswered,
    "notice_deadline": _notice_deadline,
    "installment_due": _installment_due,
    "status_since": _status_since,
    "event": _after_event,
}


async def load_cases(session: AsyncSession, case_ids: Sequence[int]) -> dict[int, Case]:
    if not case_ids:
        return {}
    rows = await session.scalars(
        sa.select(Case)
        .where(Case.id.in_(sorted(set(case_ids))))
        .options(joinedload(Case.brand), joinedload(Case.infringer))
    )
    return {case.id: case for case in rows.unique()}


async def load_conversations(
    session: AsyncSession, conversation_ids: Sequence[int]
) -> dict[int, Conversation]:
    if not conversation_ids:
        return {}
    rows = await session.scalars(
        sa.select(Conversation).where(Conversation.id.in_(sorted(set(conversation_ids))))
    )
    return {conversation.id: conversation for conversation in rows}
