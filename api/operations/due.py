"""Time-based alerts: one sweep as of a moment (`run_due_alerts(now)`), run every minute by
the worker and by `tratativa operations run-due [--at …]`.

Each finder reads the candidates with one query (a cheap calendar-time prefilter: N business
days are never shorter than N calendar days; subjects already alerted for the current cycle are
left out in SQL) and checks the business-time condition in Python with the calendar. The
unique alert key makes a second sweep for the same moment a no-op.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.conversations.models import (
    AuthorKind,
    Channel,
    Conversation,
    Direction,
    Holder,
    Message,
)
from api.db import unit_of_work, utcnow
from api.operations import kinds as ak
from api.operations.alerts import (
    AlertSpec,
    alert_key,
    do_resolve_condition,
    do_wake_snoozed,
    existing_keys,
    load_email_preferences,
    raise_alerts,
)
from api.operations.calendar import BusinessCalendar, load_calendar
from api.operations.digests import do_build_digests
from api.operations.kinds import AlertSettings, get_alert_settings, kind_label
from api.operations.models import Alert
from api.payments.models import Installment, InstallmentStatus, PaymentRequest

# Cases in these statuses are done: nothing about them is due any more.
CLOSED_STATUSES = (CaseStatus.ENCERRADO, CaseStatus.DESCARTADO)
PAID_STATUSES = (CaseStatus.PAGO, CaseStatus.ENCERRADO, CaseStatus.DESCARTADO)


@dataclass(frozen=True)
class SweepContext:
    now: dt.datetime
    calendar: BusinessCalendar
    settings: AlertSettings

    @property
    def today(self) -> dt.date:
        return self.now.astimezone(self.calendar.tz).date()

    def day_start(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(0), tzinfo=self.calendar.tz).astimezone(dt.UTC)


def _stamp(moment: dt.datetime) -> str:
    return f"t{int(moment.timestamp())}"


def _subject(prefix: str, column: Any) -> sa.ColumnElement[str]:
    return sa.literal(prefix) + sa.cast(column, sa.String)


def _not_alerted_since(
    kind: str, subject: sa.ColumnElement[str], since: Any
) -> sa.ColumnElement[bool]:
    """No alert of `kind` for `subject` raised at or after `since` (this cycle's start)."""
    return ~sa.exists().where(
        Alert.kind == kind, Alert.subject == subject, Alert.created_at >= since
    )


def _not_alerted_cycle(
    kind: str, subject: sa.ColumnElement[str], cycle: sa.ColumnElement[str]
) -> sa.ColumnElement[bool]:
    return ~sa.exists().where(Alert.kind == kind, Alert.subject == subject, Alert.cycle == cycle)


def _ref(reference: str | None) -> str:
    return f" ({reference})" if reference else ""


def _owner(holder: Holder | None, analyst_id: int | None, assignee_id: int | None) -> int | None:
    if holder is Holder.HUMAN and analyst_id is not None:
        return analyst_id
    return assignee_id


def _business_days_before(calendar: BusinessCalendar, day: dt.date, days: int) -> dt.date:
    current = day
    remaining = days
    for _ in range(3 * 366):
        if remaining <= 0:
            return current
        current -= dt.timedelta(days=1)
        if calendar.is_business_day(current):
            remaining -= 1
    return current


# Finders ------------------------------------------------------------------------------------


async def find_email_ignored(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """Our last message on a silent channel (e-mail by default) unanswered for N business
    days; once per silence (a new message of ours starts a new one)."""
    days = int(ctx.settings.get(ak.EMAIL_IGNORED, "business_days"))
    channels = [Channel(c) for c in ctx.settings.get(ak.EMAIL_IGNORED, "channels")]
    subject = _subject("conv:", Conversation.id)
    rows = await session.execute(
        sa.select(
            Conversation.id,
            Conversation.case_id,
            Conversation.last_outbound_at,
            Conversation.holder,
            Conversation.analyst_id,
            Case.assignee_id,
            Case.reference,
        )
        .outerjoin(Case, Case.id == Conversation.case_id)
        .where(
            Conversation.channel.in_(channels),
            Conversation.closed_at.is_(None),
            Conversation.last_outbound_at.is_not(None),
            Conversation.last_outbound_at <= ctx.now - dt.timedelta(days=days),
            sa.or_(
                Conversation.last_inbound_at.is_(None),
                Conversation.last_inbound_at < Conversation.last_outbound_at,
            ),
            sa.or_(Case.id.is_(None), Case.status.not_in(CLOSED_STATUSES)),
            _not_alerted_since(ak.EMAIL_IGNORED, subject, Conversation.last_outbound_at),
        )
    )
    specs = []
    for row in rows:
        due = ctx.calendar.add_business_days(row.last_outbound_at, days)
        if due > ctx.now:
            continue
        specs.append(
            AlertSpec(
                kind=ak.EMAIL_IGNORED,
                subject=f"conv:{row.id}",
                cycle=_stamp(row.last_outbound_at),
                title=f"{kind_label(ak.EMAIL_IGNORED)} há {days} dias úteis{_ref(row.reference)}",
                body="Nossa última mensagem continua sem resposta.",
                case_id=row.case_id,
                conversation_id=row.id,
                recipient_id=_owner(row.holder, row.analyst_id, row.assignee_id),
                due_at=due,
            )
        )
    return specs


async def find_handoff_first_response(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """A handoff no person has answered within the first-response target (business time,
    counted from the handoff, never from the bot's turns)."""
    minutes = int(ctx.settings.get(ak.HANDOFF_FIRST_RESPONSE, "business_minutes"))
    subject = _subject("conv:", Conversation.id)
    answered = sa.exists().where(
        Message.conversation_id == Conversation.id,
        Message.direction == Direction.OUTBOUND,
        Message.author_kind == AuthorKind.ANALYST,
        Message.created_at >= Conversation.handoff_at,
    )
    rows = await session.execute(
        sa.select(
            Conversation.id,
            Conversation.case_id,
            Conversation.handoff_at,
            Conversation.holder,
            Conversation.analyst_id,
            Case.assignee_id,
            Case.reference,
        )
        .outerjoin(Case, Case.id == Conversation.case_id)
        .where(
            Conversation.holder.in_([Holder.WAITING_HUMAN, Holder.HUMAN]),
            Conversation.closed_at.is_(None),
            Conversation.handoff_at.is_not(None),
            Conversation.handoff_at <= ctx.now - dt.timedelta(minutes=minutes),
            ~answered,
            _not_alerted_since(ak.HANDOFF_FIRST_RESPONSE, subject, Conversation.handoff_at),
        )
    )
    specs = []
    for row in rows:
        due = ctx.calendar.add_business_time(row.handoff_at, dt.timedelta(minutes=minutes))
        if due > ctx.now:
            continue
        specs.append(
            AlertSpec(
                kind=ak.HANDOFF_FIRST_RESPONSE,
                subject=f"conv:{row.id}",
                cycle=_stamp(row.handoff_at),
                title=f"{kind_label(ak.HANDOFF_FIRST_RESPONSE)}{_ref(row.reference)}",
                body=f"Passou da meta de primeira resposta ({minutes} min úteis).",
                case_id=row.case_id,
                conversation_id=row.id,
                recipient_id=_owner(row.holder, row.analyst_id, row.assignee_id),
                to_supervisors=True,
                due_at=due,
            )
        )
    return specs


async def find_handoff_next_response(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """A held conversation whose infringer wrote after the analyst's last reply, unanswered
    past the next-response target (from the first unanswered message)."""
    minutes = int(ctx.settings.get(ak.HANDOFF_NEXT_RESPONSE, "business_minutes"))
    first_unanswered = (
        sa.select(sa.func.min(Message.created_at))
        .where(
            Message.conversation_id == Conversation.id,
            Message.direction == Direction.INBOUND,
            Message.created_at > Conversation.last_outbound_at,
        )
        .scalar_subquery()
    )
    rows = await session.execute(
        sa.select(
            Conversation.id,
            Conversation.case_id,
            Conversation.analyst_id,
            Case.assignee_id,
            Case.reference,
            first_unanswered.label("waiting_since"),
        )
        .outerjoin(Case, Case.id == Conversation.case_id)
        .where(
            Conversation.holder == Holder.HUMAN,
            Conversation.closed_at.is_(None),
            Conversation.handoff_at.is_not(None),
            Conversation.last_outbound_at >= Conversation.handoff_at,
            Conversation.last_inbound_at > Conversation.last_outbound_at,
            Conversation.last_inbound_at <= ctx.now,
        )
    )
    candidates = [r for r in rows if r.waiting_since is not None]
    if not candidates:
        return []
    already = await existing_keys(
        session,
        [
            alert_key(ak.HANDOFF_NEXT_RESPONSE, f"conv:{r.id}", _stamp(r.waiting_since))
            for r in candidates
        ],
    )
    specs = []
    for row in candidates:
        spec_cycle = _stamp(row.waiting_since)
        due = ctx.calendar.add_business_time(row.waiting_since, dt.timedelta(minutes=minutes))
        if due > ctx.now:
            continue
        spec = AlertSpec(
            kind=ak.HANDOFF_NEXT_RESPONSE,
            subject=f"conv:{row.id}",
            cycle=spec_cycle,
            title=f"{kind_label(ak.HANDOFF_NEXT_RESPONSE)}{_ref(row.reference)}",
            body=f"O infrator aguarda resposta há mais de {minutes} min úteis.",
            case_id=row.case_id,
            conversation_id=row.id,
            recipient_id=row.analyst_id or row.assignee_id,
            to_supervisors=True,
            due_at=due,
        )
        if spec.key not in already:
            specs.append(spec)
    return specs


async def find_follow_ups(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """Follow-up dates reached: a conversation's moment, or a case's day (from the opening
    of business that day)."""
    specs = []
    conv_subject = _subject("conv:", Conversation.id)
    rows = await session.execute(
        sa.select(
            Conversation.id,
            Conversation.case_id,
            Conversation.follow_up_at,
            Conversation.holder,
            Conversation.analyst_id,
            Case.assignee_id,
            Case.reference,
        )
        .outerjoin(Case, Case.id == Conversation.case_id)
        .where(
            Conversation.follow_up_at.is_not(None),
            Conversation.follow_up_at <= ctx.now,
            Conversation.closed_at.is_(None),
            _not_alerted_since(ak.FOLLOW_UP_DUE, conv_subject, Conversation.follow_up_at),
        )
    )
    for row in rows:
        specs.append(
            AlertSpec(
                kind=ak.FOLLOW_UP_DUE,
                subject=f"conv:{row.id}",
                cycle=_stamp(row.follow_up_at),
                title=f"{kind_label(ak.FOLLOW_UP_DUE)}{_ref(row.reference)}",
                body="Data de acompanhamento da conversa chegou.",
                case_id=row.case_id,
                conversation_id=row.id,
                recipient_id=_owner(row.holder, row.analyst_id, row.assignee_id),
                due_at=row.follow_up_at,
            )
        )
    case_subject = _subject("case:", Case.id)
    case_rows = await session.execute(
        sa.select(Case.id, Case.follow_up_on, Case.assignee_id, Case.reference).where(
            Case.follow_up_on.is_not(None),
            Case.follow_up_on <= ctx.today,
            Case.status.not_in(CLOSED_STATUSES),
            _not_alerted_cycle(
                ak.FOLLOW_UP_DUE, case_subject, sa.cast(Case.follow_up_on, sa.String)
            ),
        )
    )
    for case_row in case_rows:
        day: dt.date = case_row.follow_up_on
        due = ctx.calendar.next_open(ctx.day_start(day))
        if due > ctx.now:
            continue
        specs.append(
            AlertSpec(
                kind=ak.FOLLOW_UP_DUE,
                subject=f"case:{case_row.id}",
                cycle=day.isoformat(),
                title=f"{kind_label(ak.FOLLOW_UP_DUE)}{_ref(case_row.reference)}",
                body=f"Acompanhamento do caso marcado para {day:%d/%m/%Y}.",
                case_id=case_row.id,
                recipient_id=case_row.assignee_id,
                due_at=due,
            )
        )
    return specs


async def find_deadlines(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """The notice's response deadline: approaching (N business days before, from the
    opening of that day) and passed (from the day after), once per deadline date."""
    before = int(ctx.settings.get(ak.DEADLINE_APPROACHING, "business_days_before"))
    horizon = ctx.today + dt.timedelta(days=before * 3 + 14)
    case_subject = _subject("case:", Case.id)
    deadline_text = sa.cast(Case.response_deadline, sa.String)
    rows = await session.execute(
        sa.select(
            Case.id, Case.status, Case.response_deadline, Case.assignee_id, Case.reference
        ).where(
            Case.status.in_([CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA]),
            Case.response_deadline.is_not(None),
            Case.response_deadline <= horizon,
            sa.or_(
                _not_alerted_cycle(ak.DEADLINE_PASSED, case_subject, deadline_text),
                sa.and_(
                    Case.status == CaseStatus.NOTIFICADO,
                    Case.response_deadline >= ctx.today,
                    _not_alerted_cycle(ak.DEADLINE_APPROACHING, case_subject, deadline_text),
                ),
            ),
        )
    )
    specs = []
    approaching_on = ctx.settings.enabled(ak.DEADLINE_APPROACHING)
    passed_on = ctx.settings.enabled(ak.DEADLINE_PASSED)
    for row in rows:
        deadline: dt.date = row.response_deadline
        passed_at = ctx.day_start(deadline + dt.timedelta(days=1))
        common = {
            "subject": f"case:{row.id}",
            "cycle": deadline.isoformat(),
            "case_id": row.id,
            "recipient_id": row.assignee_id,
        }
        if ctx.now >= passed_at:
            if passed_on:
                specs.append(
                    AlertSpec(
                        kind=ak.DEADLINE_PASSED,
                        title=f"{kind_label(ak.DEADLINE_PASSED)}{_ref(row.reference)}",
                        body=f"O prazo de resposta venceu em {deadline:%d/%m/%Y} sem resposta.",
                        due_at=passed_at,
                        to_supervisors=True,
                        **common,
                    )
                )
            continue
        if row.status != CaseStatus.NOTIFICADO or not approaching_on:
            continue
        warn_day = _business_days_before(ctx.calendar, deadline, before)
        warn_at = ctx.calendar.next_open(ctx.day_start(warn_day))
        if ctx.now >= warn_at:
            specs.append(
                AlertSpec(
                    kind=ak.DEADLINE_APPROACHING,
                    title=f"{kind_label(ak.DEADLINE_APPROACHING)}{_ref(row.reference)}",
                    body=f"O prazo de resposta vence em {deadline:%d/%m/%Y}.",
                    due_at=warn_at,
                    **common,
                )
            )
    return specs


async def find_overdue_installments(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """An open installment of the current payment request past its due date (+ grace)."""
    grace = int(ctx.settings.get(ak.INSTALLMENT_OVERDUE, "grace_days"))
    inst_subject = _subject("inst:", Installment.id)
    rows = await session.execute(
        sa.select(
            Installment.id,
            Installment.number,
            Installment.due_date,
            Installment.amount,
            Case.id.label("case_id"),
            Case.assignee_id,
            Case.reference,
        )
        .join(PaymentRequest, PaymentRequest.id == Installment.payment_request_id)
        .join(Case, Case.id == PaymentRequest.case_id)
        .where(
            Installment.status.in_([InstallmentStatus.OPEN, InstallmentStatus.OVERDUE]),
            Installment.due_date < ctx.today - dt.timedelta(days=grace),
            PaymentRequest.superseded_at.is_(None),
            Case.status.not_in(PAID_STATUSES),
            _not_alerted_cycle(
                ak.INSTALLMENT_OVERDUE, inst_subject, sa.cast(Installment.due_date, sa.String)
            ),
        )
    )
    return [
        AlertSpec(
            kind=ak.INSTALLMENT_OVERDUE,
            subject=f"inst:{row.id}",
            cycle=row.due_date.isoformat(),
            title=f"{kind_label(ak.INSTALLMENT_OVERDUE)}: {row.number}ª{_ref(row.reference)}",
            body=f"Parcela {row.number} de R$ {row.amount} venceu em {row.due_date:%d/%m/%Y}.",
            case_id=row.case_id,
            recipient_id=row.assignee_id,
            to_supervisors=True,
            due_at=ctx.day_start(row.due_date + dt.timedelta(days=grace + 1)),
        )
        for row in rows
    ]


async def find_unconfirmed_payments(session: AsyncSession, ctx: SweepContext) -> list[AlertSpec]:
    """The infringer said they paid (intent inform_paid) and the case is still not paid
    N business days later; once per first report."""
    days = int(ctx.settings.get(ak.PAYMENT_UNCONFIRMED, "business_days"))
    reports = (
        sa.select(
            Message.case_id.label("case_id"),
            sa.func.min(Message.id).label("message_id"),
            sa.func.min(Message.created_at).label("reported_at"),
        )
        .where(Message.intent == "inform_paid", Message.direction == Direction.INBOUND)
        .group_by(Message.case_id)
        .subquery()
    )
    case_subject = _subject("case:", Case.id)
    rows = await session.execute(
        sa.select(
            Case.id,
            Case.assignee_id,
            Case.reference,
            reports.c.message_id,
            reports.c.reported_at,
        )
        .join(reports, reports.c.case_id == Case.id)
        .where(
            Case.status.not_in(PAID_STATUSES),
            reports.c.reported_at <= ctx.now - dt.timedelta(days=days),
            _not_alerted_cycle(
                ak.PAYMENT_UNCONFIRMED,
                case_subject,
                sa.literal("m") + sa.cast(reports.c.message_id, sa.String),
            ),
        )
    )
    specs = []
    for row in rows:
        due = ctx.calendar.add_business_days(row.reported_at, days)
        if due > ctx.now:
            continue
        specs.append(
            AlertSpec(
                kind=ak.PAYMENT_UNCONFIRMED,
                subject=f"case:{row.id}",
                cycle=f"m{row.message_id}",
                title=f"{kind_label(ak.PAYMENT_UNCONFIRMED)}{_ref(row.reference)}",
                body=f"O infrator informou pagamento há {days} dias úteis; confira e confirme.",
                case_id=row.id,
                recipient_id=row.assignee_id,
                due_at=due,
            )
        )
    return specs


Finder = Callable[[AsyncSession, SweepContext], Awaitable[list[AlertSpec]]]
FINDERS: dict[str, Finder] = {
    ak.EMAIL_IGNORED: find_email_ignored,
    ak.HANDOFF_FIRST_RESPONSE: find_handoff_first_response,
    ak.HANDOFF_NEXT_RESPONSE: find_handoff_next_response,
    ak.FOLLOW_UP_DUE: find_follow_ups,
    ak.DEADLINE_PASSED: find_deadlines,  # also raises deadline_approaching
    ak.INSTALLMENT_OVERDUE: find_overdue_installments,
    ak.PAYMENT_UNCONFIRMED: find_unconfirmed_payments,
}


@dataclass
class SweepResult:
    raised: int = 0
    woken: int = 0
    digests: int = 0


async def do_sweep(session: AsyncSession, *, now: dt.datetime) -> SweepResult:
    """Raise every time-based alert due at `now`, wake ended snoozes, write e-mail digests."""
    calendar = await load_calendar(session)
    settings = await get_alert_settings(session)
    ctx = SweepContext(now=now, calendar=calendar, settings=settings)
    specs: list[AlertSpec] = []
    for kind, finder in FINDERS.items():
        deadline_kinds = (ak.DEADLINE_PASSED, ak.DEADLINE_APPROACHING)
        enabled = (
            any(settings.enabled(k) for k in deadline_kinds)
            if kind == ak.DEADLINE_PASSED
            else settings.enabled(kind)
        )
        if enabled:
            specs.extend(await finder(session, ctx))
    preferences = await load_email_preferences(session)
    raised = await raise_alerts(session, specs, now=now, preferences=preferences)
    for alert in raised:
        if alert.kind == ak.DEADLINE_PASSED:  # "approaching" is moot once it has passed
            await do_resolve_condition(
                session,
                kinds=[ak.DEADLINE_APPROACHING],
                subject=alert.subject,
                why="o prazo venceu",
                now=now,
            )
    result = SweepResult(raised=len(raised))
    result.woken = await do_wake_snoozed(session, now=now)
    result.digests = await do_build_digests(session, now=now, calendar=calendar)
    return result


async def run_due_alerts(
    now: dt.datetime | None = None, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> int:
    """One sweep as of `now` in its own transaction; returns how many alerts were raised.
    Running it twice for the same moment raises nothing the second time."""
    moment = (now or utcnow()).astimezone(dt.UTC)
    async with unit_of_work(maker) as session:
        result = await do_sweep(session, now=moment)
    return result.raised
