"""Alert e-mails: batched into one digest per analyst, written to an outbox table
(`alert_digests`) in the sweep's transaction and delivered by the worker with a lease and
retries, like api/outbox.

Batching: an analyst's owed alerts wait until the oldest is `DIGEST_WINDOW` old, then all of
them go in one e-mail (ten alerts within a minute are one e-mail). Quiet hours hold the digest
until they end. Each (alert, analyst) row is claimed with SKIP LOCKED and marked with its
digest in the same transaction: a second sweep never mails it again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.analysts.models import Analyst
from api.config import get_settings
from api.db import unit_of_work, utcnow
from api.errors import ChannelDeliveryError, ValidationFailed
from api.operations.calendar import BusinessCalendar
from api.operations.kinds import ALERT_KINDS, kind_label
from api.operations.models import Alert, AlertDigest, AlertEmail, AlertPreference

log = logging.getLogger(__name__)

DIGEST_WINDOW = dt.timedelta(seconds=60)
LEASE = dt.timedelta(seconds=120)
MAX_ATTEMPTS = 8
MAX_ALERTS_LISTED = 50


class DigestSender(Protocol):
    """Delivers one digest e-mail; raises ChannelDeliveryError(retryable=...) on failure and
    returns the provider's id (the Message-ID) on success."""

    async def send_digest(
        self, *, digest_id: int, to: str, name: str, subject: str, body: str
    ) -> str: ...


# Preferences --------------------------------------------------------------------------------


def in_quiet_hours(
    start: dt.time | None, end: dt.time | None, now: dt.datetime, calendar: BusinessCalendar
) -> bool:
    """Whether `now` (in the firm's time zone) is inside [start, end); the window may wrap
    midnight (22:00-07:00)."""
    if start is None or end is None or start == end:
        return False
    local = now.astimezone(calendar.tz).time().replace(tzinfo=None)
    if start < end:
        return start <= local < end
    return local >= start or local < end


async def get_preferences(session: AsyncSession, *, analyst_id: int) -> AlertPreference | None:
    return await session.get(AlertPreference, analyst_id)


async def do_set_preferences(
    session: AsyncSession,
    *,
    analyst_id: int,
    email_kinds: Sequence[str],
    quiet_start: dt.time | None,
    quiet_end: dt.time | None,
) -> AlertPreference:
    """An analyst's own choice of kinds to receive by e-mail, and quiet hours."""
    unknown = sorted(set(email_kinds) - set(ALERT_KINDS))
    if unknown:
        raise ValidationFailed(f"Tipos de alerta desconhecidos: {', '.join(unknown)}.")
    if (quiet_start is None) != (quiet_end is None):
        raise ValidationFailed("Informe o início e o fim do horário de silêncio.")
    preference = await session.get(AlertPreference, analyst_id, with_for_update=True)
    if preference is None:
        preference = AlertPreference(analyst_id=analyst_id)
        session.add(preference)
    preference.email_kinds = {"kinds": sorted(set(email_kinds))}
    preference.quiet_start = quiet_start
    preference.quiet_end = quiet_end
    preference.updated_at = utcnow()
    await session.flush()
    return preference


# Building digests ---------------------------------------------------------------------------


def _digest_text(alerts: Sequence[Alert], *, total: int) -> tuple[str, str]:
    """The digest's subject and plain-text body: the first alerts listed, all counted."""
    base = get_settings().public_base_url.rstrip("/")
    count = total
    subject = (
        f"Tratativa: {count} novo alerta" if count == 1 else f"Tratativa: {count} novos alertas"
    )
    lines = [f"Você tem {count} alerta(s) novo(s) no painel:", ""]
    for alert in alerts[:MAX_ALERTS_LISTED]:
        where = f"{base}/painel/casos/{alert.case_id}" if alert.case_id else ""
        lines.append(f"- [{kind_label(alert.kind)}] {alert.title}")
        if alert.body:
            lines.append(f"  {alert.body}")
        if where:
            lines.append(f"  {where}")
    if count > MAX_ALERTS_LISTED:
        lines.append(f"… e mais {count - MAX_ALERTS_LISTED}.")
    lines += [
        "",
        f"Central de alertas: {base}/painel/alertas",
        "Para mudar quais alertas chegam por e-mail, acesse suas preferências na central.",
    ]
    return subject, "\n".join(lines)


async def do_build_digests(
    session: AsyncSession, *, now: dt.datetime, calendar: BusinessCalendar
) -> int:
    """Write one digest per analyst whose owed alerts have waited the batching window and
    who is not in quiet hours. Returns how many digests were written."""
    owed = (
        await session.execute(
            sa.select(AlertEmail)
            .where(AlertEmail.digest_id.is_(None))
            .order_by(AlertEmail.analyst_id, AlertEmail.alert_id)
            .with_for_update(skip_locked=True)
        )
    ).scalars()
    by_analyst: dict[int, list[AlertEmail]] = defaultdict(list)
    for row in owed:
        by_analyst[row.analyst_id].append(row)
    if not by_analyst:
        return 0
    analysts = {
        a.id: a
        for a in await session.scalars(sa.select(Analyst).where(Analyst.id.in_(list(by_analyst))))
    }
    preferences = {
        p.analyst_id: p
        for p in await session.scalars(
            sa.select(AlertPreference).where(AlertPreference.analyst_id.in_(list(by_analyst)))
        )
    }
    written = 0
    for analyst_id, rows in by_analyst.items():
        analyst = analysts.get(analyst_id)
        if analyst is None or not analyst.active:
            continue
        if min(r.created_at for r in rows) > now - DIGEST_WINDOW:
            continue  # still batching
        preference = preferences.get(analyst_id)
        if preference is not None and in_quiet_hours(
            preference.quiet_start, preference.quiet_end, now, calendar
        ):
            continue
        first = [r.alert_id for r in rows[:MAX_ALERTS_LISTED]]
        listed = list(
            await session.scalars(sa.select(Alert).where(Alert.id.in_(first)).order_by(Alert.id))
        )
        subject, body = _digest_text(listed, total=len(rows))
        digest = AlertDigest(
            analyst_id=analyst_id,
            to_address=analyst.email,
            subject=subject,
            body=body,
            alert_count=len(rows),
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        session.add(digest)
        await session.flush()
        for row in rows:
            row.digest_id = digest.id
        written += 1
    await session.flush()
    return written


# Delivering digests -------------------------------------------------------------------------


async def _claim(
    maker: async_sessionmaker[AsyncSession] | None, now: dt.datetime, limit: int
) -> list[tuple[int, str, str, str, str]]:
    async with unit_of_work(maker) as session:
        digests = list(
            await session.scalars(
                sa.select(AlertDigest)
                .where(
                    sa.or_(
                        sa.and_(AlertDigest.state == "pending", AlertDigest.next_attempt_at <= now),
                        sa.and_(AlertDigest.state == "in_flight", AlertDigest.locked_until < now),
                    )
                )
                .order_by(AlertDigest.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        claimed = []
        for digest in digests:
            digest.state = "in_flight"
            digest.locked_until = now + LEASE
            digest.attempts += 1
            name = await session.scalar(
                sa.select(Analyst.name).where(Analyst.id == digest.analyst_id)
            )
            claimed.append((digest.id, digest.to_address, name or "", digest.subject, digest.body))
    return claimed


async def deliver_due_digests(
    sender: DigestSender,
    *,
    now: dt.datetime | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
    limit: int = 20,
) -> int:
    """Send the digests that are due; returns how many were sent."""
    moment = now or utcnow()
    sent = 0
    for digest_id, to, name, subject, body in await _claim(maker, moment, limit):
        provider_id: str | None = None
        error: ChannelDeliveryError | None = None
        try:
            provider_id = await sender.send_digest(
                digest_id=digest_id, to=to, name=name, subject=subject, body=body
            )
        except ChannelDeliveryError as exc:
            error = exc
        async with unit_of_work(maker) as session:
            digest = await session.get(AlertDigest, digest_id, with_for_update=True)
            if digest is None:
                continue
            digest.locked_until = None
            if error is None:
                digest.state = "done"
                digest.provider_id = provider_id
                digest.done_at = utcnow()
                sent += 1
            elif error.retryable and digest.attempts < MAX_ATTEMPTS:
                digest.state = "pending"
                digest.last_error = error.message[:500]
                digest.next_attempt_at = moment + dt.timedelta(seconds=30 * 2**digest.attempts)
            else:
                digest.state = "failed"
                digest.last_error = error.message[:500]
                log.warning("alert digest %s failed for good: %s", digest_id, error.message)
    return sent
