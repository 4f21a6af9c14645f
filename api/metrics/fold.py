"""The fold: how each event moves the rollups. One implementation, two drivers — the durable
consumer (rows loaded from the database, a batch at a time) and the rebuild (every row in
memory, written at the end). The definitions it implements are in api/metrics/definitions.py.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from api.conversations.models import Channel
from api.metrics.models import (
    MetricCase,
    MetricCaseChannel,
    MetricConversation,
    MetricEvent,
    MetricInterval,
    MetricOutbound,
)
from api.operations.calendar import BusinessCalendar

# Kinds the fold reads; the consumer asks only for these.
FOLDED_KINDS = frozenset(
    {
        "message.received",
        "message.sent",
        "message.delivered",
        "message.failed",
        "handoff.requested",
        "handoff.claimed",
        "handoff.released",
        "handoff.resolved",
        "case.status_changed",
        "agreement.proposed",
        "agreement.accepted",
        "payment.confirmed",
        "contact.opted_out",
        "alert.raised",
        "listing.status_changed",
    }
)
# Events also kept one row each in metric_events (counted by the reports).
COUNTED_KINDS = frozenset(
    {
        "message.received",
        "handoff.requested",
        "handoff.claimed",
        "agreement.proposed",
        "agreement.accepted",
        "payment.confirmed",
        "contact.opted_out",
        "alert.raised",
    }
)
AGREEMENT_STATUSES = frozenset({"ACORDO_PROPOSTO", "ACORDO_ASSINADO"})
CHANNELS = tuple(str(channel) for channel in Channel)


@dataclass(frozen=True)
class Ev:
    """An event as the fold reads it: the envelope and the kind's payload (JSON values)."""

    id: int
    kind: str
    case_id: int | None
    conversation_id: int | None
    channel: str | None
    actor_kind: str
    actor_id: int | None
    occurred_at: dt.datetime
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseInfo:
    brand_id: int | None
    reference_amount: Decimal | None


class Store(Protocol):
    """Where the fold finds and keeps rows (the database, or memory during a rebuild)."""

    async def case_info(self, case_id: int) -> CaseInfo | None: ...
    async def provider_of(self, conversation_id: int) -> str | None: ...
    async def get_conversation(self, conversation_id: int) -> MetricConversation | None: ...
    async def get_case(self, case_id: int) -> MetricCase | None: ...
    async def get_case_channel(self, case_id: int, channel: str) -> MetricCaseChannel | None: ...
    async def get_outbound(self, message_id: int) -> MetricOutbound | None: ...
    def create(self, model: type[Any], **values: Any) -> Any:
        """A new row of `model` with every column's value; returns the object to change."""
        ...


def _money(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def week_of(calendar: BusinessCalendar, at: dt.datetime) -> dt.date:
    """The Monday of `at`'s week in the business time zone."""
    local = at.astimezone(calendar.tz).date()
    return local - dt.timedelta(days=local.weekday())


class Folder:
    """Applies events, in stream order, to a Store."""

    def __init__(self, store: Store, calendar: BusinessCalendar) -> None:
        self.store = store
        self.calendar = calendar
        self._open: dict[dt.date, list[tuple[dt.datetime, dt.datetime]]] = {}

    def _open_on(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The day's working shifts in UTC (cached: a rebuild measures a million waits)."""
        shifts = self._open.get(day)
        if shifts is None:
            tz = self.calendar.tz
            shifts = self._open[day] = (
                [
                    (
                        dt.datetime.combine(day, begin, tzinfo=tz).astimezone(dt.UTC),
                        dt.datetime.combine(day, end, tzinfo=tz).astimezone(dt.UTC),
                    )
                    for begin, end in self.calendar.shifts
                ]
                if self.calendar.is_business_day(day)
                else []
            )
        return shifts

    def business_seconds(self, start: dt.datetime, end: dt.datetime) -> float:
        """Working seconds in [start, end) — BusinessCalendar.business_seconds_between, with
        the days' shifts cached."""
        if end <= start:
            return 0.0
        tz = self.calendar.tz
        day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
        total = 0.0
        while day <= last:
            for open_at, close_at in self._open_on(day):
                low, high = max(open_at, start), min(close_at, end)
                if high > low:
                    total += (high - low).total_seconds()
            day += dt.timedelta(days=1)
        return total

    # --- rows ------------------------------------------------------------------------------

    async def _case(self, ev: Ev) -> MetricCase | None:
        if ev.case_id is None:
            return None
        row = await self.store.get_case(ev.case_id)
        if row is None:
            info = await self.store.case_info(ev.case_id)
            row = self.store.create(
                MetricCase,
                case_id=ev.case_id,
                brand_id=info.brand_id if info else None,
                reference_amount=info.reference_amount if info else None,
                cohort_at=ev.occurred_at,
                week=week_of(self.calendar, ev.occurred_at),
                agreements=0,
                bot_only=False,
            )
        return row

    async def _conversation(self, ev: Ev) -> MetricConversation | None:
        if ev.conversation_id is None:
            return None
        row = await self.store.get_conversation(ev.conversation_id)
        if row is None:
            info = await self.store.case_info(ev.case_id) if ev.case_id is not None else None
            row = self.store.create(
                MetricConversation,
                conversation_id=ev.conversation_id,
                case_id=ev.case_id,
                brand_id=info.brand_id if info else None,
                channel=ev.channel or "",
                provider=await self.store.provider_of(ev.conversation_id),
                started_at=ev.occurred_at,
                week=week_of(self.calendar, ev.occurred_at),
                handoffs=0,
                bot_answered=False,
            )
        elif row.case_id is None and ev.case_id is not None:
            # A conversation linked to its case later (unmatched mail confirmed by an analyst).
            info = await self.store.case_info(ev.case_id)
            row.case_id = ev.case_id
            row.brand_id = info.brand_id if info else None
        return row

    async def _case_channel(self, case: MetricCase, channel: str) -> MetricCaseChannel:
        row = await self.store.get_case_channel(case.case_id, channel)
        if row is None:
            row = self.store.create(
                MetricCaseChannel,
                case_id=case.case_id,
                channel=channel,
                cohort_at=case.cohort_at,
                contacted_at=None,
                engaged_at=None,
            )
        return row

    def _interval(
        self,
        kind: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        ev: Ev,
        brand_id: int | None,
        analyst_id: int | None = None,
        conversation_id: int | None = None,
        channel: str | None = None,
    ) -> None:
        end = max(end, start)
        self.store.create(
            MetricInterval,
            kind=kind,
            started_at=start,
            ended_at=end,
            week=week_of(self.calendar, start),
            wall_seconds=(end - start).total_seconds(),
            business_seconds=self.business_seconds(start, end),
            case_id=ev.case_id,
            conversation_id=conversation_id,
            brand_id=brand_id,
            channel=channel or ev.channel,
            analyst_id=analyst_id,
        )

    def _count(
        self,
        ev: Ev,
        brand_id: int | None,
        *,
        analyst_id: int | None = None,
        label: str | None = None,
        amount: Decimal | None = None,
    ) -> None:
        self.store.create(
            MetricEvent,
            event_id=ev.id,
            kind=ev.kind,
            occurred_at=ev.occurred_at,
            case_id=ev.case_id,
            conversation_id=ev.conversation_id,
            brand_id=brand_id,
            channel=ev.channel,
            analyst_id=analyst_id,
            label=label[:200] if label else None,
            amount=amount,
        )

    def _analyst(self, ev: Ev) -> int | None:
        return ev.actor_id if ev.actor_kind == "analyst" else None

    # --- the fold ----------------------------------------------------------------------------

    async def apply(self, ev: Ev) -> None:
        if ev.kind not in FOLDED_KINDS:
            return
        case = await self._case(ev)
        conversation = await self._conversation(ev)
        brand_id = (
            case.brand_id
            if case is not None
            else conversation.brand_id
            if conversation is not None
            else None
        )
        handler = getattr(self, "_on_" + ev.kind.replace(".", "_"))
        await handler(ev, case, conversation, brand_id)

    async def _on_message_received(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        answerable = bool(ev.payload.get("answerable", True))
        self._count(ev, brand, label="answerable" if answerable else "automatic")
        if not answerable:
            return  # auto-replies and bounces are not the infringer answering
        if conv is not None:
            conv.engaged_at = conv.engaged_at or ev.occurred_at
            if conv.pending_since is None:
                conv.pending_since = ev.occurred_at
        if case is not None:
            case.engaged_at = case.engaged_at or ev.occurred_at
            case.last_inbound_channel = ev.channel
            if ev.channel:
                place = await self._case_channel(case, ev.channel)
                place.engaged_at = place.engaged_at or ev.occurred_at

    async def _on_message_sent(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        author = str(ev.payload.get("author_kind") or ev.actor_kind)
        analyst_id = ev.actor_id if author == "analyst" else None
        self.store.create(
            MetricOutbound,
            message_id=int(ev.payload["message_id"]),
            conversation_id=ev.conversation_id,
            case_id=ev.case_id,
            brand_id=brand,
            channel=ev.channel or "",
            provider=conv.provider if conv is not None else None,
            author_kind=author,
            analyst_id=analyst_id,
            sent_at=ev.occurred_at,
            accepted=False,
            delivered=False,
            read=False,
            failed=False,
        )
        if conv is not None:
            conv.contacted_at = conv.contacted_at or ev.occurred_at
        if case is not None and ev.channel:
            place = await self._case_channel(case, ev.channel)
            place.contacted_at = place.contacted_at or ev.occurred_at
        if conv is None:
            return
        cid = conv.conversation_id
        if author == "bot" and conv.pending_since is not None:
            kind = "bot_next" if conv.bot_answered else "bot_first"
            self._interval(
                kind, conv.pending_since, ev.occurred_at, ev=ev, brand_id=brand, conversation_id=cid
            )
            conv.bot_answered = True
            conv.pending_since = None
        elif author == "analyst":
            if conv.handoff_since is not None:
                # The human first response runs from the handoff, not from the infringer's
                # first message.
                self._interval(
                    "human_first",
                    conv.handoff_since,
                    ev.occurred_at,
                    ev=ev,
                    brand_id=brand,
                    analyst_id=analyst_id,
                    conversation_id=cid,
                )
                conv.handoff_since = None
                conv.pending_since = None
            elif conv.pending_since is not None:
                self._interval(
                    "human_next",
                    conv.pending_since,
                    ev.occurred_at,
                    ev=ev,
                    brand_id=brand,
                    analyst_id=analyst_id,
                    conversation_id=cid,
                )
                conv.pending_since = None

    async def _on_message_delivered(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        row = await self.store.get_outbound(int(ev.payload["message_id"]))
        if row is None:
            return  # sent before the stream existed
        status = str(ev.payload.get("status"))
        row.accepted = True
        if status in ("delivered", "read"):
            row.delivered = True
        if status == "read":
            row.read = True

    async def _on_message_failed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        row = await self.store.get_outbound(int(ev.payload["message_id"]))
        if row is not None:
            row.failed = True

    async def _on_handoff_requested(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        self._count(ev, brand, label=str(ev.payload.get("reason") or ""))
        if conv is not None:
            conv.handoffs += 1
            conv.handoff_since = conv.handoff_since or ev.occurred_at
            conv.queue_since = conv.queue_since or ev.occurred_at
        if case is not None:
            case.handoff_at = case.handoff_at or ev.occurred_at

    async def _on_handoff_claimed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        analyst_id = int(ev.payload["analyst_id"])
        self._count(ev, brand, analyst_id=analyst_id)
        if conv is not None:
            if conv.queue_since is not None:
                self._interval(
                    "queue_wait",
                    conv.queue_since,
                    ev.occurred_at,
                    ev=ev,
                    brand_id=brand,
                    analyst_id=analyst_id,
                    conversation_id=conv.conversation_id,
                )
                conv.queue_since = None
            elif ev.payload.get("previous_analyst_id") is None and conv.handoff_since is None:
                # Taken straight from the bot: a handoff too, and the human timer starts at
                # the take-over.
                conv.handoff_since = ev.occurred_at
                conv.handoffs += 1
            conv.last_analyst_id = analyst_id
        if case is not None:
            case.handoff_at = case.handoff_at or ev.occurred_at
            case.last_analyst_id = analyst_id

    async def _on_handoff_released(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        if conv is not None:
            conv.handoff_since = conv.queue_since = conv.pending_since = None

    _on_handoff_resolved = _on_handoff_released

    async def _reach_agreement(self, ev: Ev, case: MetricCase, brand: int | None) -> None:
        if case.agreement_at is not None:
            return
        case.agreement_at = ev.occurred_at
        # Attribution (last touch): the channel of the infringer's last message before it.
        case.agreement_channel = case.last_inbound_channel or ev.channel
        case.bot_only = case.handoff_at is None
        case.agreement_analyst_id = self._analyst(ev) or (
            None if case.handoff_at is None else case.last_analyst_id
        )
        if case.notified_at is not None:
            self._interval(
                "notice_to_agreement",
                case.notified_at,
                ev.occurred_at,
                ev=ev,
                brand_id=brand,
                analyst_id=case.agreement_analyst_id,
                channel=case.agreement_channel,
            )

    async def _on_case_status_changed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        if case is None:
            return
        target = str(ev.payload.get("to_status"))
        case.status = target
        if target == "NOTIFICADO" and case.notified_at is None:
            case.notified_at = ev.occurred_at
            case.cohort_at = ev.occurred_at
            case.week = week_of(self.calendar, ev.occurred_at)
            for channel in CHANNELS:
                place = await self.store.get_case_channel(case.case_id, channel)
                if place is not None:
                    place.cohort_at = case.cohort_at
        elif target in AGREEMENT_STATUSES:
            await self._reach_agreement(ev, case, brand)
        elif target == "ENCERRADO":
            case.closed_at = case.closed_at or ev.occurred_at
        elif target == "REABERTO":
            case.reopened_at = case.reopened_at or ev.occurred_at

    async def _on_agreement_proposed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        amount = _money(ev.payload.get("amount"))
        self._count(ev, brand, analyst_id=self._analyst(ev), amount=amount)
        if case is None:
            return
        await self._reach_agreement(ev, case, brand)
        case.agreements += 1
        case.agreement_amount = amount
        case.agreement_installments = ev.payload.get("installments")

    async def _on_agreement_accepted(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        amount = _money(ev.payload.get("amount"))
        self._count(ev, brand, analyst_id=self._analyst(ev), amount=amount)
        if case is None:
            return
        await self._reach_agreement(ev, case, brand)
        if amount is not None:
            case.agreement_amount = amount
            case.agreement_installments = ev.payload.get("installments")

    async def _on_payment_confirmed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        amount = _money(ev.payload.get("amount"))
        self._count(ev, brand, analyst_id=self._analyst(ev), amount=amount)
        if case is None:
            return
        if case.paid_at is None:
            case.paid_at = ev.occurred_at
            if case.notified_at is not None:
                self._interval(
                    "notice_to_payment",
                    case.notified_at,
                    ev.occurred_at,
                    ev=ev,
                    brand_id=brand,
                    analyst_id=case.agreement_analyst_id,
                    channel=case.agreement_channel,
                )
        if amount is not None:
            case.paid_amount = (case.paid_amount or Decimal(0)) + amount

    async def _on_contact_opted_out(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        self._count(ev, brand)
        if conv is not None:
            conv.opted_out_at = conv.opted_out_at or ev.occurred_at

    async def _on_alert_raised(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        detail = ev.payload.get("detail") or {}
        detail = detail if isinstance(detail, dict) else {}
        # Who missed the target: the analyst the alert names, else the conversation's last
        # analyst, else the alert's recipient.
        analyst_id = detail.get("analyst_id")
        if analyst_id is None and conv is not None:
            analyst_id = conv.last_analyst_id
        if analyst_id is None:
            analyst_id = detail.get("recipient_id")
        self._count(
            ev,
            brand,
            analyst_id=int(analyst_id) if analyst_id is not None else None,
            label=str(ev.payload.get("alert") or ""),
        )

    async def _on_listing_status_changed(
        self, ev: Ev, case: MetricCase | None, conv: MetricConversation | None, brand: int | None
    ) -> None:
        if case is not None and str(ev.payload.get("to_status")) == "removed":
            case.removed_at = case.removed_at or ev.occurred_at
