"""The metrics read model: every figure of the dashboard, the API, the CSV and `tratativa report`
comes from `get_metrics` (one query path), reading the rollups the fold maintains.

Medians and 90th percentiles are exact (PostgreSQL's percentile_cont; the same interpolation in
Python on SQLite). Definitions: api/metrics/definitions.py.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api.analysts.models import Analyst
from api.brands.models import Brand
from api.errors import NotFound, ValidationFailed
from api.metrics.definitions import RECEIPT_CHANNELS, is_sla_alert
from api.metrics.fold import COUNTED_KINDS
from api.metrics.models import (
    MetricCase,
    MetricCaseChannel,
    MetricConversation,
    MetricEvent,
    MetricInterval,
    MetricOutbound,
)
from api.metrics.schemas import (
    AnalystRow,
    BrandRow,
    ChannelRow,
    EventCountRow,
    Filters,
    MetricsReport,
    ProviderRow,
    ReasonRow,
    Stat,
    StatusRow,
    Timing,
    WeekRow,
)
from api.operations.calendar import BusinessCalendar, load_calendar

CHANNEL_TIMINGS = {
    "bot_first": "bot_first_response",
    "bot_next": "bot_next_response",
    "human_first": "human_first_response",
    "human_next": "human_next_response",
    "queue_wait": "queue_wait",
    "notice_to_agreement": "notice_to_agreement",
    "notice_to_payment": "notice_to_payment",
}
ANALYST_TIMINGS = {
    "queue_wait": "queue_wait",
    "human_first": "first_response",
    "human_next": "next_response",
}
WEEK_TIMINGS = {"bot_first": "bot_first_response", "human_first": "human_first_response"}
MIN_YEAR, MAX_YEAR = 2000, 2100
TABLES = (
    "channels",
    "providers",
    "analysts",
    "brands",
    "statuses",
    "handoff_reasons",
    "events",
    "weeks",
)


@dataclass(frozen=True)
class Scope:
    """The filters, resolved: a UTC range and the optional brand, channel and analyst."""

    start: dt.datetime | None
    end: dt.datetime | None
    brand_id: int | None
    channel: str | None
    analyst_id: int | None


def parse_period(
    period: str | None, date_from: dt.date | None, date_to: dt.date | None
) -> tuple[dt.date | None, dt.date | None]:
    """`2026-11` → (2026-11-01, 2026-11-30), ValidationFailed if malformed; or the explicit
    local days."""
    if period:
        try:
            year, month = (int(part) for part in period.strip().split("-"))
            if not MIN_YEAR <= year <= MAX_YEAR:
                raise ValueError(year)
            first = dt.date(year, month, 1)
        except ValueError as exc:
            raise ValidationFailed(f"Período inválido: {period!r} (use AAAA-MM).") from exc
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return first, following - dt.timedelta(days=1)
    # Days far outside the data mean "no bound" (clamped, so the UTC range never overflows);
    # two days in either order are the days between them.
    low, high = _clamp(date_from), _clamp(date_to)
    if low is not None and high is not None and high < low:
        low, high = high, low
    return low, high


def _clamp(day: dt.date | None) -> dt.date | None:
    if day is None:
        return None
    return min(max(day, dt.date(MIN_YEAR, 1, 1)), dt.date(MAX_YEAR, 12, 31))


def _utc_range(
    first: dt.date | None, last: dt.date | None, tz: ZoneInfo
) -> tuple[dt.datetime | None, dt.datetime | None]:
    start = dt.datetime.combine(first, dt.time(), tzinfo=tz).astimezone(dt.UTC) if first else None
    end = (
        dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
        if last
        else None
    )
    return start, end


def _in_period(column: Any, scope: Scope) -> list[sa.ColumnElement[bool]]:
    clauses: list[sa.ColumnElement[bool]] = []
    if scope.start is not None:
        clauses.append(column >= scope.start)
    if scope.end is not None:
        clauses.append(column < scope.end)
    return clauses


def _rate(part: int | None, whole: int | None) -> float | None:
    return None if not whole else (part or 0) / whole


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


# Percentiles -----------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Linear interpolation between closest ranks — what PostgreSQL's percentile_cont does."""
    if not values:
        return None
    ordered = sorted(values)
    rank = fraction * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _stat_of(values: Sequence[float]) -> Stat:
    if not values:
        return Stat()
    return Stat(
        n=len(values),
        median=percentile(values, 0.5),
        p90=percentile(values, 0.9),
        mean=sum(values) / len(values),
    )


def _pg(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


async def _timings(
    session: AsyncSession,
    *,
    group: Sequence[Any],
    kinds: Iterable[str],
    where: Sequence[sa.ColumnElement[bool]],
) -> dict[tuple[Any, ...], Timing]:
    """Timing per (group values…, kind) over metric_intervals."""
    i = MetricInterval
    conditions = [i.kind.in_(sorted(kinds)), *where]
    keys = [*group, i.kind]
    result: dict[tuple[Any, ...], Timing] = {}
    if _pg(session):
        w, b = i.wall_seconds, i.business_seconds
        query = (
            sa.select(
                *keys,
                sa.func.count(),
                sa.func.percentile_cont(0.5).within_group(w),
                sa.func.percentile_cont(0.9).within_group(w),
                sa.func.avg(w),
                sa.func.percentile_cont(0.5).within_group(b),
                sa.func.percentile_cont(0.9).within_group(b),
                sa.func.avg(b),
            )
            .where(*conditions)
            .group_by(*keys)
        )
        for row in (await session.execute(query)).all():
            k = len(keys)
            n, wm, w9, wa, bm, b9, ba = row[k:]
            result[tuple(row[:k])] = Timing(
                wall=Stat(n=n, median=wm, p90=w9, mean=float(wa)),
                business=Stat(n=n, median=bm, p90=b9, mean=float(ba)),
            )
        return result
    walls: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    business: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    query = sa.select(*keys, i.wall_seconds, i.business_seconds).where(*conditions)
    for row in (await session.execute(query)).all():
        key = tuple(row[: len(keys)])
        walls[key].append(row[-2])
        business[key].append(row[-1])
    for key, values in walls.items():
        result[key] = Timing(wall=_stat_of(values), business=_stat_of(business[key]))
    return result


# Scope per rollup --------------------------------------------------------------------------


def _conversation_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    c = MetricConversation
    clauses = _in_period(c.started_at, scope)
    if scope.brand_id is not None:
        clauses.append(c.brand_id == scope.brand_id)
    if scope.channel is not None:
        clauses.append(c.channel == scope.channel)
    if scope.analyst_id is not None:
        clauses.append(c.last_analyst_id == scope.analyst_id)
    return clauses


def _outbound_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    o = MetricOutbound
    clauses = _in_period(o.sent_at, scope)
    if scope.brand_id is not None:
        clauses.append(o.brand_id == scope.brand_id)
    if scope.channel is not None:
        clauses.append(o.channel == scope.channel)
    if scope.analyst_id is not None:
        clauses.append(o.analyst_id == scope.analyst_id)
    return clauses


def _interval_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    i = MetricInterval
    clauses = _in_period(i.started_at, scope)
    if scope.brand_id is not None:
        clauses.append(i.brand_id == scope.brand_id)
    if scope.channel is not None:
        clauses.append(i.channel == scope.channel)
    if scope.analyst_id is not None:
        clauses.append(i.analyst_id == scope.analyst_id)
    return clauses


def _event_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    e = MetricEvent
    clauses = _in_period(e.occurred_at, scope)
    if scope.brand_id is not None:
        clauses.append(e.brand_id == scope.brand_id)
    if scope.channel is not None:
        clauses.append(e.channel == scope.channel)
    if scope.analyst_id is not None:
        clauses.append(e.analyst_id == scope.analyst_id)
    return clauses


def _case_scope(scope: Scope) -> list[sa.ColumnElement[bool]]:
    c = MetricCase
    clauses = _in_period(c.cohort_at, scope)
    if scope.brand_id is not None:
        clauses.append(c.brand_id == scope.brand_id)
    if scope.channel is not None:
        # A correlated EXISTS on the (case_id, channel) key, each case of the period probing
        # it; OFFSET 0 keeps PostgreSQL from turning it into a hash join over every case that
        # ever used the channel (a full scan of the table for a month's few thousand cases).
        place = aliased(MetricCaseChannel)
        clauses.append(
            sa.select(place.case_id)
            .where(place.case_id == c.case_id, place.channel == scope.channel)
            .offset(0)
            .exists()
        )
    if scope.analyst_id is not None:
        clauses.append(c.last_analyst_id == scope.analyst_id)
    return clauses


def _yes(column: Any) -> sa.ColumnElement[int]:
    return sa.func.count().filter(column)


# The tables --------------------------------------------------------------------------------


async def _channels(session: AsyncSession, scope: Scope) -> list[ChannelRow]:
    query: Any
    rows: dict[str, ChannelRow] = {}

    def row(channel: str | None) -> ChannelRow:
        key = channel or "?"
        if key not in rows:
            rows[key] = ChannelRow(channel=key)
        return rows[key]

    c = MetricConversation
    contacted = c.contacted_at.is_not(None)
    answered = sa.and_(contacted, c.engaged_at.is_not(None))
    query = (
        sa.select(
            c.channel,
            sa.func.count(),
            _yes(contacted),
            _yes(answered),
            sa.func.count(sa.distinct(c.case_id)).filter(contacted),
            sa.func.count(sa.distinct(c.case_id)).filter(answered),
            _yes(sa.and_(c.engaged_at.is_not(None), c.handoffs > 0)),
            _yes(c.engaged_at.is_not(None)),
            _yes(sa.and_(contacted, c.opted_out_at.is_not(None))),
        )
        .where(*_conversation_scope(scope))
        .group_by(c.channel)
    )
    for channel, total, n_contacted, n_answered, cc, ca, handed, engaged, opted in (
        await session.execute(query)
    ).all():
        r = row(channel)
        r.conversations = total
        r.conversations_contacted = n_contacted
        r.conversations_answered = n_answered
        r.response_rate = _rate(n_answered, n_contacted)
        r.cases_contacted, r.cases_answered = cc, ca
        r.case_response_rate = _rate(ca, cc)
        r.conversations_handed_off = handed
        r.handoff_rate = _rate(handed, engaged)
        r.conversations_opted_out = opted
        r.opt_out_rate = _rate(opted, n_contacted)

    o = MetricOutbound
    query = (
        sa.select(
            o.channel,
            sa.func.count(),
            _yes(o.delivered.is_(True)),
            _yes(sa.and_(o.accepted.is_(True), o.failed.is_(False))),
            _yes(o.read.is_(True)),
            _yes(o.failed.is_(True)),
        )
        .where(*_outbound_scope(scope))
        .group_by(o.channel)
    )
    for channel, sent, delivered, accepted_ok, read, failed in (await session.execute(query)).all():
        r = row(channel)
        r.messages_sent = sent
        r.messages_failed = failed
        if channel in RECEIPT_CHANNELS:
            r.messages_delivered = delivered
            r.messages_read = read
            r.read_rate = _rate(read, delivered)
        else:  # no delivery receipts: accepted by the receiving server and not bounced
            r.messages_delivered = accepted_ok
        r.delivery_rate = _rate(r.messages_delivered, sent)

    e = MetricEvent
    query = (
        sa.select(
            e.channel,
            e.kind,
            sa.func.count(),
            # Distinct cases only where shown (handoffs): no sort of every inbound message.
            sa.func.count(sa.distinct(e.case_id)).filter(e.kind == "handoff.requested"),
        )
        .where(
            e.kind.in_(["message.received", "handoff.requested", "contact.opted_out"]),
            # Auto-replies and bounces are not the infringer writing.
            sa.or_(e.kind != "message.received", e.label == "answerable"),
            e.channel.is_not(None),
            *_event_scope(scope),
        )
        .group_by(e.channel, e.kind)
    )
    for channel, kind, events, cases in (await session.execute(query)).all():
        r = row(channel)
        if kind == "message.received":
            r.messages_received = events
        elif kind == "handoff.requested":
            r.handoff_events, r.handoff_cases = events, cases
        else:
            r.opt_out_events = events

    k, cc_ = MetricCase, MetricCaseChannel
    engaged_here = cc_.engaged_at.is_not(None)
    contacted_here = cc_.contacted_at.is_not(None)
    query = (
        sa.select(
            cc_.channel,
            _yes(contacted_here),
            _yes(engaged_here),
            _yes(sa.and_(contacted_here, k.agreement_at.is_not(None))),
            _yes(sa.and_(contacted_here, k.paid_at.is_not(None))),
            _yes(sa.and_(contacted_here, k.removed_at.is_not(None))),
            _yes(sa.and_(engaged_here, k.agreement_at.is_not(None))),
            _yes(sa.and_(engaged_here, k.paid_at.is_not(None))),
        )
        .join(k, k.case_id == cc_.case_id)
        # The period on both sides: each side is read through its cohort index.
        .where(*_case_scope(scope), *_in_period(cc_.cohort_at, scope))
        .group_by(cc_.channel)
    )
    if scope.channel is not None:
        query = query.where(cc_.channel == scope.channel)
    for channel, n_contacted, n_engaged, agreed, paid, removed, eng_agreed, eng_paid in (
        await session.execute(query)
    ).all():
        r = row(channel)
        r.cases_engaged = n_engaged
        r.agreement_cases, r.payment_cases, r.removal_cases = agreed, paid, removed
        r.agreement_rate = _rate(agreed, n_contacted)
        r.payment_rate = _rate(paid, n_contacted)
        r.removal_rate = _rate(removed, n_contacted)
        r.conversion_agreement = _rate(eng_agreed, n_engaged)
        r.conversion_payment = _rate(eng_paid, n_engaged)

    query = (
        sa.select(
            k.agreement_channel,
            sa.func.count(),
            _yes(k.paid_at.is_not(None)),
            _yes(k.bot_only.is_(True)),
        )
        .where(k.agreement_at.is_not(None), k.agreement_channel.is_not(None), *_case_scope(scope))
        .group_by(k.agreement_channel)
    )
    if scope.channel is not None:
        query = query.where(k.agreement_channel == scope.channel)
    for channel, agreements, paid, bot_only in (await session.execute(query)).all():
        r = row(channel)
        r.attributed_agreements, r.attributed_payments = agreements, paid
        r.bot_only_agreements = bot_only
        r.bot_only_share = _rate(bot_only, agreements)

    timings = await _timings(
        session,
        group=[MetricInterval.channel],
        kinds=CHANNEL_TIMINGS,
        where=[MetricInterval.channel.is_not(None), *_interval_scope(scope)],
    )
    for (channel, kind), timing in timings.items():
        setattr(row(channel), CHANNEL_TIMINGS[kind], timing)
    return [rows[key] for key in sorted(rows)]


async def _providers(session: AsyncSession, scope: Scope) -> list[ProviderRow]:
    """Per (channel, provider), for the conversations a provider carried (WhatsApp providers:
    Twilio, Meta, 360dialog, Z-API, UltraMsg); conversations without one are left out."""
    query: Any
    rows: dict[tuple[str, str], ProviderRow] = {}

    def row(channel: str, provider: str) -> ProviderRow:
        if (channel, provider) not in rows:
            rows[(channel, provider)] = ProviderRow(channel=channel, provider=provider)
        return rows[(channel, provider)]

    c = MetricConversation
    contacted = c.contacted_at.is_not(None)
    query = (
        sa.select(
            c.channel,
            c.provider,
            sa.func.count(),
            _yes(contacted),
            _yes(sa.and_(contacted, c.engaged_at.is_not(None))),
        )
        .where(c.provider.is_not(None), *_conversation_scope(scope))
        .group_by(c.channel, c.provider)
    )
    for channel, provider, total, n_contacted, n_answered in (await session.execute(query)).all():
        r = row(channel, provider)
        r.conversations, r.conversations_contacted = total, n_contacted
        r.conversations_answered = n_answered
        r.response_rate = _rate(n_answered, n_contacted)
    o = MetricOutbound
    query = (
        sa.select(
            o.channel,
            o.provider,
            sa.func.count(),
            _yes(o.delivered.is_(True)),
            _yes(sa.and_(o.accepted.is_(True), o.failed.is_(False))),
            _yes(o.read.is_(True)),
            _yes(o.failed.is_(True)),
        )
        .where(o.provider.is_not(None), *_outbound_scope(scope))
        .group_by(o.channel, o.provider)
    )
    for channel, provider, sent, delivered, accepted_ok, read, failed in (
        await session.execute(query)
    ).all():
        r = row(channel, provider)
        r.messages_sent, r.messages_failed = sent, failed
        if channel in RECEIPT_CHANNELS:
            r.messages_delivered, r.messages_read = delivered, read
            r.read_rate = _rate(read, delivered)
        else:
            r.messages_delivered = accepted_ok
        r.delivery_rate = _rate(r.messages_delivered, sent)
    return [rows[key] for key in sorted(rows)]


async def _analysts(session: AsyncSession, scope: Scope) -> list[AnalystRow]:
    query: Any
    rows: dict[int, AnalystRow] = {}
    names = dict((await session.execute(sa.select(Analyst.id, Analyst.name))).all())

    def row(analyst_id: int) -> AnalystRow:
        if analyst_id not in rows:
            rows[analyst_id] = AnalystRow(
                analyst_id=analyst_id, name=names.get(analyst_id, f"#{analyst_id}")
            )
        return rows[analyst_id]

    e = MetricEvent
    query = (
        sa.select(
            e.analyst_id, e.kind, e.label, sa.func.count(), sa.func.count(sa.distinct(e.case_id))
        )
        .where(
            e.kind.in_(["handoff.claimed", "alert.raised"]),
            e.analyst_id.is_not(None),
            *_event_scope(scope),
        )
        .group_by(e.analyst_id, e.kind, e.label)
    )
    for analyst_id, kind, label, events, cases in (await session.execute(query)).all():
        r = row(int(analyst_id))
        if kind == "handoff.claimed":
            r.handoffs_taken += events
            r.handoff_cases += cases
        elif is_sla_alert(label):
            r.sla_breaches += events

    o = MetricOutbound
    query = (
        sa.select(o.analyst_id, sa.func.count())
        .where(o.analyst_id.is_not(None), *_outbound_scope(scope))
        .group_by(o.analyst_id)
    )
    for analyst_id, sent in (await session.execute(query)).all():
        row(int(analyst_id)).messages_sent = sent

    timings = await _timings(
        session,
        group=[MetricInterval.analyst_id],
        kinds=ANALYST_TIMINGS,
        where=[MetricInterval.analyst_id.is_not(None), *_interval_scope(scope)],
    )
    for (analyst_id, kind), timing in timings.items():
        setattr(row(int(analyst_id)), ANALYST_TIMINGS[kind], timing)

    k = MetricCase
    conditions = [k.agreement_analyst_id.is_not(None), *_in_period(k.agreement_at, scope)]
    if scope.brand_id is not None:
        conditions.append(k.brand_id == scope.brand_id)
    if scope.channel is not None:
        conditions.append(k.agreement_channel == scope.channel)
    if scope.analyst_id is not None:
        conditions.append(k.agreement_analyst_id == scope.analyst_id)
    query = (
        sa.select(
            k.agreement_analyst_id,
            sa.func.count(),
            sa.func.sum(k.agreement_amount),
            sa.func.sum(k.reference_amount),
        )
        .where(*conditions, k.agreement_amount.is_not(None), k.reference_amount.is_not(None))
        .group_by(k.agreement_analyst_id)
    )
    for analyst_id, agreements, agreed, reference in (await session.execute(query)).all():
        r = row(int(analyst_id))
        r.agreements = agreements
        r.agreed_amount = _money(agreed)
        r.reference_amount = _money(reference)
        r.discount_amount = _money(r.reference_amount - r.agreed_amount)
        r.discount_rate = (
            float(r.discount_amount / r.reference_amount) if r.reference_amount else None
        )
    return sorted(rows.values(), key=lambda r: (r.name, r.analyst_id))


async def _brands(session: AsyncSession, scope: Scope) -> tuple[list[BrandRow], list[StatusRow]]:
    query: Any
    names = dict((await session.execute(sa.select(Brand.id, Brand.name))).all())
    k = MetricCase
    query = (
        sa.select(
            k.brand_id,
            sa.func.count(),
            _yes(k.notified_at.is_not(None)),
            _yes(k.engaged_at.is_not(None)),
            _yes(k.agreement_at.is_not(None)),
            _yes(k.paid_at.is_not(None)),
            _yes(k.closed_at.is_not(None)),
            _yes(k.reopened_at.is_not(None)),
            _yes(k.bot_only.is_(True)),
            sa.func.sum(k.agreement_amount).filter(k.agreement_at.is_not(None)),
            sa.func.sum(k.paid_amount),
        )
        .where(k.brand_id.is_not(None), *_case_scope(scope))
        .group_by(k.brand_id)
    )
    brands = [
        BrandRow(
            brand_id=brand_id,
            name=names.get(brand_id, f"#{brand_id}"),
            cases=cases,
            notified=notified,
            engaged=engaged,
            agreement=agreement,
            paid=paid,
            closed=closed,
            reopened=reopened,
            bot_only_agreements=bot_only,
            agreed_amount=_money(agreed),
            received_amount=_money(received),
        )
        for (
            brand_id,
            cases,
            notified,
            engaged,
            agreement,
            paid,
            closed,
            reopened,
            bot_only,
            agreed,
            received,
        ) in (await session.execute(query)).all()
    ]
    query = (
        sa.select(k.brand_id, k.status, sa.func.count())
        .where(k.brand_id.is_not(None), k.status.is_not(None), *_case_scope(scope))
        .group_by(k.brand_id, k.status)
    )
    statuses = [
        StatusRow(brand_id=brand_id, status=status, cases=cases)
        for brand_id, status, cases in (await session.execute(query)).all()
    ]
    brands.sort(key=lambda r: (r.name, r.brand_id))
    statuses.sort(key=lambda r: (r.brand_id, r.status))
    return brands, statuses


async def _reasons(session: AsyncSession, scope: Scope) -> list[ReasonRow]:
    e = MetricEvent
    query = (
        sa.select(e.channel, e.label, sa.func.count(), sa.func.count(sa.distinct(e.case_id)))
        .where(e.kind == "handoff.requested", *_event_scope(scope))
        .group_by(e.channel, e.label)
    )
    reasons = [
        ReasonRow(channel=channel or "?", reason=label or "", events=events, cases=cases)
        for channel, label, events, cases in (await session.execute(query)).all()
    ]
    return sorted(reasons, key=lambda r: (r.channel, -r.events, r.reason))


async def _events(session: AsyncSession, scope: Scope) -> list[EventCountRow]:
    query: Any
    e, o = MetricEvent, MetricOutbound
    query = (
        sa.select(
            e.kind, sa.func.count(), sa.func.count(sa.distinct(e.case_id)), sa.func.sum(e.amount)
        )
        # Naming the kinds lets the (kind, occurred_at) index serve the period.
        .where(e.kind.in_(sorted(COUNTED_KINDS)), *_event_scope(scope))
        .group_by(e.kind)
    )
    counts = [
        EventCountRow(
            kind=kind,
            events=events,
            cases=cases,
            amount=_money(amount) if amount is not None else None,
        )
        for kind, events, cases, amount in (await session.execute(query)).all()
    ]
    sent = (
        await session.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(o.case_id))).where(
                *_outbound_scope(scope)
            )
        )
    ).one()
    counts.append(EventCountRow(kind="message.sent", events=sent[0], cases=sent[1]))
    return sorted(counts, key=lambda r: r.kind)


async def _weeks(session: AsyncSession, scope: Scope) -> list[WeekRow]:
    query: Any
    k = MetricCase
    rows: dict[dt.date, WeekRow] = {}
    query = (
        sa.select(
            k.week,
            sa.func.count(),
            _yes(k.engaged_at.is_not(None)),
            _yes(k.agreement_at.is_not(None)),
            _yes(k.paid_at.is_not(None)),
        )
        .where(*_case_scope(scope))
        .group_by(k.week)
    )
    for week, cases, engaged, agreement, paid in (await session.execute(query)).all():
        rows[week] = WeekRow(
            week=week, cases=cases, engaged=engaged, agreement=agreement, paid=paid
        )
    timings = await _timings(
        session, group=[MetricInterval.week], kinds=WEEK_TIMINGS, where=_interval_scope(scope)
    )
    for (week, kind), timing in timings.items():
        target = rows.setdefault(week, WeekRow(week=week))
        setattr(target, WEEK_TIMINGS[kind], timing)
    return [rows[w] for w in sorted(rows)]


# The calendar (only its time zone matters here) per database, kept a little while: the
# dashboard asks for it once per table and it changes rarely.
_CALENDAR_TTL = 30.0
_calendars: dict[str, tuple[float, BusinessCalendar]] = {}


async def _calendar(session: AsyncSession) -> BusinessCalendar:
    bind = session.get_bind()
    key = str(bind.engine.url)
    cached = _calendars.get(key)
    if cached is not None and time.monotonic() - cached[0] < _CALENDAR_TTL:
        return cached[1]
    calendar = await load_calendar(session)
    _calendars[key] = (time.monotonic(), calendar)
    return calendar


async def get_metrics(
    session: AsyncSession,
    *,
    period: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    brand_id: int | None = None,
    channel: str | None = None,
    analyst_id: int | None = None,
    tables: Iterable[str] = TABLES,
) -> MetricsReport:
    """The figures for the filters (all tables unless `tables` names some)."""
    first, last = parse_period(period, date_from, date_to)
    calendar = await _calendar(session)
    start, end = _utc_range(first, last, calendar.tz)
    scope = Scope(start, end, brand_id, channel, analyst_id)
    report = MetricsReport(
        filters=Filters(
            period=period,
            date_from=first,
            date_to=last,
            brand_id=brand_id,
            channel=channel,
            analyst_id=analyst_id,
            timezone=calendar.tz.key,
        )
    )
    wanted = set(tables)
    unknown = wanted - set(TABLES)
    if unknown:
        raise ValidationFailed(f"Tabela desconhecida: {', '.join(sorted(unknown))}.")
    if "channels" in wanted:
        report.channels = await _channels(session, scope)
    if "providers" in wanted:
        report.providers = await _providers(session, scope)
    if "analysts" in wanted:
        report.analysts = await _analysts(session, scope)
    if wanted & {"brands", "statuses"}:
        report.brands, report.statuses = await _brands(session, scope)
    if "handoff_reasons" in wanted:
        report.handoff_reasons = await _reasons(session, scope)
    if "events" in wanted:
        report.events = await _events(session, scope)
    if "weeks" in wanted:
        report.weeks = await _weeks(session, scope)
    return report


async def require_brand_id(session: AsyncSession, *, reference: str) -> int:
    """A brand by id or by name (case-insensitive), or NotFound."""
    text = reference.strip()
    query = sa.select(Brand.id).where(sa.func.lower(Brand.name) == text.lower())
    if text.isdigit():
        query = sa.select(Brand.id).where(Brand.id == int(text))
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"Marca não encontrada: {reference!r}.")
    return int(found)


async def require_analyst_id(session: AsyncSession, *, reference: str) -> int:
    """An analyst by id or by e-mail (case-insensitive), or NotFound."""
    text = reference.strip()
    query = sa.select(Analyst.id).where(sa.func.lower(Analyst.email) == text.lower())
    if text.isdigit():
        query = sa.select(Analyst.id).where(Analyst.id == int(text))
    found = await session.scalar(query)
    if found is None:
        raise NotFound(f"Analista não encontrado: {reference!r}.")
    return int(found)


@dataclass(frozen=True)
class FilterOptions:
    """What the dashboard's filters offer: brands and analysts by name."""

    brands: list[tuple[int, str]]
    analysts: list[tuple[int, str]]


async def get_filter_options(session: AsyncSession) -> FilterOptions:
    brands = (await session.execute(sa.select(Brand.id, Brand.name).order_by(Brand.name))).all()
    analysts = (
        await session.execute(
            sa.select(Analyst.id, Analyst.name)
            .where(Analyst.active.is_(True))
            .order_by(Analyst.name)
        )
    ).all()
    return FilterOptions(
        brands=[(int(r[0]), str(r[1])) for r in brands],
        analysts=[(int(r[0]), str(r[1])) for r in analysts],
    )
