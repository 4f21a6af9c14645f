"""Alerts: raised once per (kind, subject, cycle), shown to the responsible analyst (and to
supervisors when the case is unassigned or the alert is a breach), acknowledged, snoozed or
resolved by a person, resolved by the system when its condition clears.

Exactly once: the `key` column is unique and rows are inserted with ON CONFLICT DO NOTHING …
RETURNING, so a replayed event or a second sweep for the same moment raises nothing; only the
rows actually inserted get their timeline entry and their `alert.raised` event. A new cycle
(a moved deadline, a new silence) is a new key: the alert is re-armed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.db import utcnow
from api.errors import NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events.kinds import AlertRaised, AlertUpdated, EventActorKind
from api.operations.kinds import ALERT_KINDS, kind_label
from api.operations.models import Alert, AlertEmail, AlertPreference
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor, create_entry

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
SNOOZED = "snoozed"
RESOLVED = "resolved"
STATES = (OPEN, ACKNOWLEDGED, SNOOZED, RESOLVED)
_CHUNK = 500


@dataclass(frozen=True)
class AlertSpec:
    """One alert to raise; (kind, subject, cycle) is its identity."""

    kind: str
    subject: str
    cycle: str
    title: str
    body: str = ""
    case_id: int | None = None
    conversation_id: int | None = None
    recipient_id: int | None = None
    to_supervisors: bool = False
    due_at: dt.datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return alert_key(self.kind, self.subject, self.cycle)


def alert_key(kind: str, subject: str, cycle: str) -> str:
    key = f"{kind}:{subject}:{cycle}"
    if len(key) <= 200:
        return key
    return f"{kind}:{hashlib.sha256(key.encode()).hexdigest()}"


@dataclass(frozen=True)
class EmailPreferences:
    """Who wants e-mail for which kinds (loaded once per sweep or batch)."""

    kinds_by_analyst: dict[int, frozenset[str]]
    supervisors: frozenset[int]

    def recipients(self, alert: Alert) -> set[int]:
        """The analysts who asked for this kind by e-mail and see this alert."""
        wanted: set[int] = set()
        if alert.recipient_id is not None and alert.kind in self.kinds_by_analyst.get(
            alert.recipient_id, frozenset()
        ):
            wanted.add(alert.recipient_id)
        if alert.to_supervisors:
            wanted.update(
                s for s in self.supervisors if alert.kind in self.kinds_by_analyst.get(s, ())
            )
        return wanted


async def load_email_preferences(session: AsyncSession) -> EmailPreferences:
    rows = await session.execute(
        sa.select(AlertPreference.analyst_id, AlertPreference.email_kinds)
        .join(Analyst, Analyst.id == AlertPreference.analyst_id)
        .where(Analyst.active.is_(True))
    )
    kinds = {row.analyst_id: frozenset((row.email_kinds or {}).get("kinds") or []) for row in rows}
    supervisors = frozenset(
        await session.scalars(
            sa.select(Analyst.id).where(
                Analyst.active.is_(True), Analyst.role.in_([Role.SUPERVISOR, Role.ADMIN])
            )
        )
    )
    return EmailPreferences(kinds, supervisors)


def _insert(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


async def existing_keys(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    wanted = list(dict.fromkeys(keys))
    found: set[str] = set()
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        found.update(await session.scalars(sa.select(Alert.key).where(Alert.key.in_(chunk))))
    return found


async def raise_alerts(
    session: AsyncSession,
    specs: Sequence[AlertSpec],
    *,
    now: dt.datetime | None = None,
    preferences: EmailPreferences | None = None,
) -> list[Alert]:
    """Insert the alerts not raised before; each new one lands on the timeline and in the
    event stream. Returns the new alerts."""
    now = now or utcnow()
    unique = {spec.key: spec for spec in specs if spec.kind in ALERT_KINDS}
    if not unique:
        return []
    already = await existing_keys(session, unique)
    fresh = [s for k, s in unique.items() if k not in already]
    if not fresh:
        return []
    preferences = preferences or await load_email_preferences(session)
    raised: list[Alert] = []
    for start in range(0, len(fresh), _CHUNK):
        raised.extend(await _raise_chunk(session, fresh[start : start + _CHUNK], now, preferences))
    return raised


async def _raise_chunk(
    session: AsyncSession,
    fresh: Sequence[AlertSpec],
    now: dt.datetime,
    preferences: EmailPreferences,
) -> list[Alert]:
    insert = _insert(session)
    rows = [
        {
            "key": spec.key,
            "kind": spec.kind,
            "subject": spec.subject,
            "cycle": spec.cycle,
            "case_id": spec.case_id,
            "conversation_id": spec.conversation_id,
            "recipient_id": spec.recipient_id,
            "to_supervisors": spec.to_supervisors or spec.recipient_id is None,
            "severity": ALERT_KINDS[spec.kind].severity,
            "title": spec.title[:200],
            "body": spec.body,
            "due_at": spec.due_at,
            "state": OPEN,
            "repeats": 0,
            "last_seen_at": now,
            "created_at": now,
        }
        for spec in fresh
    ]
    # Executemany (insertmanyvalues batches it): no statement with thousands of literals.
    statement = insert(Alert).on_conflict_do_nothing(index_elements=["key"]).returning(Alert.id)
    new_ids = list(await session.scalars(statement, rows))
    if not new_ids:
        return []
    alerts = list(await session.scalars(sa.select(Alert).where(Alert.id.in_(new_ids))))
    by_key = {spec.key: spec for spec in fresh}
    emails = [
        {"alert_id": alert.id, "analyst_id": analyst_id, "created_at": now}
        for alert in alerts
        for analyst_id in sorted(preferences.recipients(alert))
    ]
    if emails:
        await session.execute(sa.insert(AlertEmail), emails)
    ordered = sorted(alerts, key=lambda a: a.id)
    system = Actor.system()
    # One flush for every entry (a first sweep over a large base raises thousands): the same
    # rows create_entry writes, without its flush per entry.
    session.add_all(
        [
            TimelineEntry(
                kind=EntryKind.ALERT,
                actor_kind=system.kind,
                analyst_id=None,
                actor_name=system.name,
                summary=f"Alerta: {alert.title}",
                case_id=alert.case_id,
                conversation_id=alert.conversation_id,
                data={"alert_id": alert.id, "kind": alert.kind, "key": alert.key},
            )
            for alert in ordered
            if alert.case_id is not None or alert.conversation_id is not None
        ]
    )
    for alert in ordered:
        spec = by_key[alert.key]
        emit(
            session,
            AlertRaised(
                **{
                    **about(actor=EventActorKind.SYSTEM, case_id=alert.case_id),
                    "conversation_id": alert.conversation_id,
                },
                occurred_at=now,
                alert=alert.kind,
                severity=alert.severity,
                detail={
                    "alert_id": alert.id,
                    "title": alert.title,
                    "recipient_id": alert.recipient_id,
                    "to_supervisors": alert.to_supervisors,
                    **spec.detail,
                },
            ),
        )
    await session.flush()
    return alerts


async def get_unresolved(
    session: AsyncSession,
    *,
    kind: str,
    subject: str,
    for_update: bool = False,
    unseen_only: bool = False,
) -> Alert | None:
    """The newest alert of `kind` about `subject` not resolved (with `unseen_only`: not
    acknowledged either — open or snoozed)."""
    states = (OPEN, SNOOZED) if unseen_only else (OPEN, SNOOZED, ACKNOWLEDGED)
    query = (
        sa.select(Alert)
        .where(Alert.kind == kind, Alert.subject == subject, Alert.state.in_(states))
        .order_by(Alert.id.desc())
        .limit(1)
    )
    if for_update:
        query = query.with_for_update()
    return await session.scalar(query)


async def do_fold_repeat(session: AsyncSession, *, alert: Alert, now: dt.datetime) -> None:
    """A repeat of an alert still open in its cycle: counted on it, nothing new raised."""
    alert.repeats += 1
    alert.last_seen_at = now
    await session.flush()


# Who sees an alert -------------------------------------------------------------------------


def visible_to(analyst: Analyst) -> sa.ColumnElement[bool]:
    """Alerts addressed to the analyst, and, for supervisors, those sent to supervisors."""
    mine = Alert.recipient_id == analyst.id
    if analyst.has_role(Role.SUPERVISOR):
        return sa.or_(mine, Alert.to_supervisors.is_(True))
    return mine


def active_at(now: dt.datetime) -> sa.ColumnElement[bool]:
    """Open, or snoozed until a moment already past."""
    return sa.or_(
        Alert.state == OPEN,
        sa.and_(Alert.state == SNOOZED, Alert.snoozed_until <= now),
    )


def check_visible(alert: Alert, analyst: Analyst) -> None:
    if alert.recipient_id == analyst.id:
        return
    if alert.to_supervisors and analyst.has_role(Role.SUPERVISOR):
        return
    if analyst.has_role(Role.SUPERVISOR):
        return  # supervisors may act on any alert (e.g. one of an absent analyst)
    raise PermissionDenied("Este alerta não é seu.")


async def count_active(session: AsyncSession, *, analyst: Analyst, now: dt.datetime) -> int:
    """The notification centre's unread count."""
    value = await session.scalar(
        sa.select(sa.func.count()).select_from(Alert).where(visible_to(analyst), active_at(now))
    )
    return int(value or 0)


async def get_alerts(
    session: AsyncSession,
    *,
    analyst: Analyst,
    now: dt.datetime,
    scope: str = "active",
    case_id: int | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Alert]:
    """The analyst's alerts, newest first: "active" (open or woken), "snoozed",
    "acknowledged", "resolved" or "all"."""
    query = sa.select(Alert).where(visible_to(analyst))
    if scope == "active":
        query = query.where(active_at(now))
    elif scope == SNOOZED:
        query = query.where(Alert.state == SNOOZED, Alert.snoozed_until > now)
    elif scope in (ACKNOWLEDGED, RESOLVED):
        query = query.where(Alert.state == scope)
    elif scope != "all":
        raise ValidationFailed(f"Filtro desconhecido: {scope!r}.")
    if case_id is not None:
        query = query.where(Alert.case_id == case_id)
    if before_id is not None:
        query = query.where(Alert.id < before_id)
    return list(await session.scalars(query.order_by(Alert.id.desc()).limit(min(limit, 500))))


async def require_alert(session: AsyncSession, *, alert_id: int, analyst: Analyst) -> Alert:
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None:
        raise NotFound("Alerta não encontrado.")
    check_visible(alert, analyst)
    return alert


# Changing state ----------------------------------------------------------------------------


def _analyst_actor(analyst: Analyst) -> Actor:
    return Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)


async def _changed(
    session: AsyncSession, alert: Alert, *, actor: Actor, summary: str | None
) -> None:
    if summary and (alert.case_id is not None or alert.conversation_id is not None):
        await create_entry(
            session,
            kind=EntryKind.ALERT,
            actor=actor,
            case_id=alert.case_id,
            conversation_id=alert.conversation_id,
            summary=summary,
            data={"alert_id": alert.id, "kind": alert.kind, "state": alert.state},
        )
    emit(
        session,
        AlertUpdated(
            **{
                **about(actor=actor, case_id=alert.case_id),
                "conversation_id": alert.conversation_id,
            },
            alert_id=alert.id,
            alert=alert.kind,
            state=alert.state,
        ),
    )
    await session.flush()


async def do_acknowledge(
    session: AsyncSession, *, alert_id: int, analyst: Analyst, now: dt.datetime | None = None
) -> Alert:
    """ "I have seen it": it leaves the unread count (a resolved alert stays resolved)."""
    alert = await require_alert(session, alert_id=alert_id, analyst=analyst)
    if alert.state in (RESOLVED, ACKNOWLEDGED):
        return alert
    alert.state = ACKNOWLEDGED
    alert.acknowledged_at = now or utcnow()
    alert.acknowledged_by_id = analyst.id
    alert.snoozed_until = None
    await _changed(
        session,
        alert,
        actor=_analyst_actor(analyst),
        summary=f"Alerta visto por {analyst.name}: {alert.title}",
    )
    return alert


async def do_snooze(
    session: AsyncSession,
    *,
    alert_id: int,
    analyst: Analyst,
    until: dt.datetime,
    now: dt.datetime | None = None,
) -> Alert:
    """Hide it until `until`; then it is active (and counted) again."""
    now = now or utcnow()
    if until.tzinfo is None:
        raise ValidationFailed("Informe até quando adiar com fuso horário.")
    if until <= now:
        raise ValidationFailed("Adie para um momento no futuro.")
    if until > now + dt.timedelta(days=90):
        raise ValidationFailed("Adie por no máximo 90 dias.")
    alert = await require_alert(session, alert_id=alert_id, analyst=analyst)
    if alert.state == RESOLVED:
        raise ValidationFailed("Este alerta já foi resolvido.")
    alert.state = SNOOZED
    alert.snoozed_until = until
    await _changed(session, alert, actor=_analyst_actor(analyst), summary=None)
    return alert


async def do_resolve(
    session: AsyncSession, *, alert_id: int, analyst: Analyst, now: dt.datetime | None = None
) -> Alert:
    alert = await require_alert(session, alert_id=alert_id, analyst=analyst)
    if alert.state == RESOLVED:
        return alert
    alert.state = RESOLVED
    alert.resolved_at = now or utcnow()
    alert.resolved_by_id = analyst.id
    await _changed(
        session,
        alert,
        actor=_analyst_actor(analyst),
        summary=f"Alerta resolvido por {analyst.name}: {alert.title}",
    )
    return alert


async def do_resolve_condition(
    session: AsyncSession,
    *,
    kinds: Iterable[str],
    why: str,
    subject: str | None = None,
    case_id: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """The condition behind these alerts cleared (the analyst replied, the payment was
    confirmed…): resolve the unresolved ones of `subject` (or of the case). Returns how many."""
    query = sa.select(Alert).where(Alert.kind.in_(list(kinds)), Alert.state != RESOLVED)
    if subject is not None:
        query = query.where(Alert.subject == subject)
    elif case_id is not None:
        query = query.where(Alert.case_id == case_id)
    else:
        raise ValueError("resolve by subject or by case")
    return await do_resolve_alerts(session, list(await session.scalars(query)), why=why, now=now)


async def do_resolve_alerts(
    session: AsyncSession, alerts: Sequence[Alert], *, why: str, now: dt.datetime | None = None
) -> int:
    """Resolve these alerts (loaded by the caller, unresolved) because their condition cleared:
    `do_resolve_condition` for a caller that already holds them. Returns how many."""
    for alert in alerts:
        alert.state = RESOLVED
        alert.resolved_at = now or utcnow()
        await _changed(
            session,
            alert,
            actor=Actor.system(),
            summary=f"Alerta encerrado ({why}): {kind_label(alert.kind)}",
        )
    return len(alerts)


async def do_wake_snoozed(session: AsyncSession, *, now: dt.datetime) -> int:
    """Snoozes that ended: the alert is open again (and the badge is told)."""
    alerts = list(
        await session.scalars(
            sa.select(Alert)
            .where(Alert.state == SNOOZED, Alert.snoozed_until <= now)
            .with_for_update(skip_locked=True)
        )
    )
    for alert in alerts:
        alert.state = OPEN
        alert.snoozed_until = None
        await _changed(session, alert, actor=Actor.system(), summary=None)
    return len(alerts)
