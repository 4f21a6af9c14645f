"""The business calendar: time zone, working shifts (split allowed) and holidays.

"3 dias" means business days; timers pause outside working hours. National holidays come from
the `holidays` library (plus the optional ones the firm observes, Carnival by default, and a
state's when configured); an admin adds the firm's own closed days in the `business_holidays`
table. Settings give the defaults (api/config.py); an admin's override lives in the
`operations_settings` row "calendar" and wins.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import Settings, get_settings
from api.db import utcnow
from api.errors import ValidationFailed
from api.operations.models import BusinessHoliday, OperationsSetting

CALENDAR_SETTING_KEY = "calendar"
# Searching further than this for an open minute means the calendar has none (no working day).
_MAX_DAYS_SCAN = 3 * 366

Shift = tuple[dt.time, dt.time]


def parse_shifts(text: str) -> tuple[Shift, ...]:
    """'09:00-12:00,13:00-18:00' → ordered, non-overlapping shifts; ValidationFailed if not."""
    shifts: list[Shift] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            start_text, end_text = (p.strip() for p in part.split("-"))
            start, end = dt.time.fromisoformat(start_text), dt.time.fromisoformat(end_text)
        except ValueError as exc:
            raise ValidationFailed(f"Turno inválido: {part!r} (use HH:MM-HH:MM).") from exc
        if end <= start:
            raise ValidationFailed(f"Turno inválido: {part!r} termina antes de começar.")
        shifts.append((start, end))
    shifts.sort()
    for (_, prev_end), (next_start, _) in itertools.pairwise(shifts):
        if next_start < prev_end:
            raise ValidationFailed("Turnos sobrepostos.")
    if not shifts:
        raise ValidationFailed("Informe ao menos um turno de trabalho.")
    return tuple(shifts)


def parse_days(text: str) -> frozenset[int]:
    try:
        days = frozenset(int(d) for d in text.split(",") if d.strip())
    except ValueError as exc:
        raise ValidationFailed(f"Dias úteis inválidos: {text!r} (0=segunda … 6=domingo).") from exc
    if not days or any(d < 0 or d > 6 for d in days):
        raise ValidationFailed(f"Dias úteis inválidos: {text!r} (0=segunda … 6=domingo).")
    return days


def _split_names(text: str) -> frozenset[str]:
    return frozenset(n.strip().casefold() for n in text.split(",") if n.strip())


@lru_cache(maxsize=256)
def _library_holidays(
    year: int, state: str, optional_names: frozenset[str]
) -> Mapping[dt.date, str]:
    """National (and the state's) public holidays of one year, plus the optional ones named."""
    public = holidays.country_holidays(
        "BR", subdiv=state or None, years=year, language="pt_BR", categories=("public",)
    )
    days: dict[dt.date, str] = dict(public.items())
    if optional_names:
        optional = holidays.country_holidays(
            "BR", subdiv=state or None, years=year, language="pt_BR", categories=("optional",)
        )
        for day, name in optional.items():
            if name.casefold() in optional_names:
                days.setdefault(day, name)
    return days


@dataclass(frozen=True)
class BusinessCalendar:
    """Immutable; build it with `default_calendar()` or `load_calendar(session)`."""

    tz: ZoneInfo
    shifts: tuple[Shift, ...]
    days: frozenset[int]
    state: str = ""
    optional_holidays: frozenset[str] = frozenset()
    extra_holidays: Mapping[dt.date, str] = field(default_factory=dict)

    # --- holidays -------------------------------------------------------------------------

    def holiday_name(self, day: dt.date) -> str | None:
        """The holiday's name if `day` is one (the firm's own or the library's)."""
        extra = self.extra_holidays.get(day)
        if extra is not None:
            return extra
        return _library_holidays(day.year, self.state, self.optional_holidays).get(day)

    def is_business_day(self, day: dt.date) -> bool:
        return day.weekday() in self.days and self.holiday_name(day) is None

    def _intervals(self, day: dt.date) -> list[tuple[dt.datetime, dt.datetime]]:
        """The day's open intervals as aware UTC datetimes (empty on a closed day)."""
        if not self.is_business_day(day):
            return []
        return [
            (
                dt.datetime.combine(day, start, tzinfo=self.tz).astimezone(dt.UTC),
                dt.datetime.combine(day, end, tzinfo=self.tz).astimezone(dt.UTC),
            )
            for start, end in self.shifts
        ]

    def _local_date(self, at: dt.datetime) -> dt.date:
        return _aware(at).astimezone(self.tz).date()

    # --- the interface ----------------------------------------------------------------------

    def is_open(self, at: dt.datetime) -> bool:
        """Whether `at` falls inside a working shift of a business day."""
        moment = _aware(at).astimezone(dt.UTC)
        return any(start <= moment < end for start, end in self._intervals(self._local_date(at)))

    def next_open(self, at: dt.datetime) -> dt.datetime:
        """`at` itself when open, else the start of the next shift (UTC)."""
        return self.add_business_time(at, dt.timedelta(0), snap=True)

    def add_business_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The same local time of day, `days` business days after `start`'s local date (UTC).

        Counting starts on the day after `start` whatever `start` is, so an e-mail sent on a
        Saturday at 10:00 is "3 business days old" on Wednesday at 10:00."""
        if days < 0:
            raise ValueError("days must be >= 0")
        local = _aware(start).astimezone(self.tz)
        day = local.date()
        remaining = days
        scanned = 0
        while remaining > 0:
            day += dt.timedelta(days=1)
            scanned += 1
            if scanned > _MAX_DAYS_SCAN:
                raise ValueError("the calendar has no business day")
            if self.is_business_day(day):
                remaining -= 1
        wall = dt.datetime.combine(day, local.time().replace(tzinfo=None), tzinfo=self.tz)
        return wall.astimezone(dt.UTC)

    def add_business_time(
        self, start: dt.datetime, delta: dt.timedelta, *, snap: bool = False
    ) -> dt.datetime:
        """The moment when `delta` of working time has passed since `start` (UTC).

        The clock only runs inside shifts: 1 h from 11:30 with a 12:00-13:00 lunch break is
        13:30. A zero delta returns `start` unchanged unless `snap` asks for the next open
        moment."""
        if delta < dt.timedelta(0):
            raise ValueError("delta must be >= 0")
        cursor = _aware(start).astimezone(dt.UTC)
        if delta == dt.timedelta(0) and not snap:
            return cursor
        remaining = delta
        day = self._local_date(cursor)
        for _ in range(_MAX_DAYS_SCAN):
            for begin, end in self._intervals(day):
                segment_start = max(begin, cursor)
                if segment_start >= end:
                    continue
                available = end - segment_start
                if remaining <= available:
                    return segment_start + remaining
                remaining -= available
            day += dt.timedelta(days=1)
        raise ValueError("the calendar has no business day")

    def business_seconds_between(self, start: dt.datetime, end: dt.datetime) -> float:
        """Working seconds in [start, end); 0.0 when end <= start."""
        begin = _aware(start).astimezone(dt.UTC)
        finish = _aware(end).astimezone(dt.UTC)
        if finish <= begin:
            return 0.0
        total = 0.0
        day = self._local_date(begin)
        last = self._local_date(finish)
        while day <= last:
            for open_at, close_at in self._intervals(day):
                lo, hi = max(open_at, begin), min(close_at, finish)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += dt.timedelta(days=1)
        return total

    def describe(self) -> dict[str, Any]:
        """A plain description for the API and the panel."""
        return {
            "timezone": self.tz.key,
            "shifts": ",".join(f"{s:%H:%M}-{e:%H:%M}" for s, e in self.shifts),
            "days": ",".join(str(d) for d in sorted(self.days)),
            "state": self.state,
            "optional_holidays": sorted(self.optional_holidays),
            "extra_holidays": {d.isoformat(): n for d, n in sorted(self.extra_holidays.items())},
        }


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given; use timezone-aware datetimes")
    return moment


def _extra_from_text(text: str) -> dict[dt.date, str]:
    extra: dict[dt.date, str] = {}
    for part in text.split(","):
        part = part.strip()
        if part:
            try:
                extra[dt.date.fromisoformat(part)] = "Feriado da empresa"
            except ValueError as exc:
                raise ValidationFailed(f"Data de feriado inválida: {part!r}.") from exc
    return extra


def build_calendar(
    settings: Settings,
    override: Mapping[str, Any] | None = None,
    extra_holidays: Iterable[tuple[dt.date, str]] = (),
) -> BusinessCalendar:
    """A calendar from the settings, an admin's override (same names, without `business_`)
    and the firm's own holidays."""
    override = override or {}
    shifts_text = str(override.get("shifts") or settings.business_shifts or "").strip()
    if not shifts_text:
        shifts_text = f"{settings.business_hours_start:02d}:00-{settings.business_hours_end:02d}:00"
    tz_name = str(override.get("timezone") or settings.business_timezone)
    try:
        tz = ZoneInfo(tz_name)
    except (KeyError, ValueError) as exc:
        raise ValidationFailed(f"Fuso horário desconhecido: {tz_name!r}.") from exc
    state = str(override.get("state", settings.business_holidays_state) or "").strip().upper()
    if state and state not in holidays.list_supported_countries()["BR"]:
        raise ValidationFailed(f"UF desconhecida para feriados estaduais: {state!r}.")
    optional = override.get("optional_holidays", settings.business_optional_holidays)
    optional_text = ",".join(optional) if isinstance(optional, list) else str(optional or "")
    extra = _extra_from_text(settings.business_extra_holidays)
    extra.update(dict(extra_holidays))
    return BusinessCalendar(
        tz=tz,
        shifts=parse_shifts(shifts_text),
        days=parse_days(str(override.get("days") or settings.business_days)),
        state=state,
        optional_holidays=_split_names(optional_text),
        extra_holidays=extra,
    )


def default_calendar() -> BusinessCalendar:
    """The calendar from settings only (no database), for pure code."""
    return build_calendar(get_settings())


async def load_calendar(session: AsyncSession) -> BusinessCalendar:
    """The calendar as configured: settings, the admin's override and the firm's holidays."""
    override = await session.scalar(
        sa.select(OperationsSetting.value).where(OperationsSetting.key == CALENDAR_SETTING_KEY)
    )
    rows = (await session.execute(sa.select(BusinessHoliday.day, BusinessHoliday.name))).all()
    return build_calendar(get_settings(), override, [(r.day, r.name) for r in rows])


async def do_update_calendar(
    session: AsyncSession, *, changes: Mapping[str, Any], analyst_id: int | None
) -> BusinessCalendar:
    """An admin changes the calendar (timezone, shifts, days, state, optional_holidays);
    the whole result is validated before anything is stored."""
    allowed = {"timezone", "shifts", "days", "state", "optional_holidays"}
    unknown = set(changes) - allowed
    if unknown:
        raise ValidationFailed(f"Opções desconhecidas do calendário: {', '.join(sorted(unknown))}.")
    row = await session.get(OperationsSetting, CALENDAR_SETTING_KEY, with_for_update=True)
    current: dict[str, Any] = dict(row.value) if row is not None else {}
    current.update({k: v for k, v in changes.items() if v is not None})
    calendar = build_calendar(get_settings(), current)  # raises on a bad value
    if row is None:
        session.add(
            OperationsSetting(
                key=CALENDAR_SETTING_KEY,
                value=current,
                updated_at=utcnow(),
                updated_by_id=analyst_id,
            )
        )
    else:
        row.value = current
        row.updated_at = utcnow()
        row.updated_by_id = analyst_id
    await session.flush()
    return calendar


async def get_holidays(session: AsyncSession) -> list[BusinessHoliday]:
    """The firm's own closed days, oldest first."""
    return list(await session.scalars(sa.select(BusinessHoliday).order_by(BusinessHoliday.day)))


async def do_add_holiday(
    session: AsyncSession, *, day: dt.date, name: str, analyst_id: int | None
) -> BusinessHoliday:
    """Add (or rename) a closed day of the firm."""
    name = " ".join(name.split())
    if not name or len(name) > 120:
        raise ValidationFailed("Informe o nome do feriado (até 120 caracteres).")
    holiday = await session.get(BusinessHoliday, day)
    if holiday is None:
        holiday = BusinessHoliday(day=day, name=name, created_by_id=analyst_id)
        session.add(holiday)
    else:
        holiday.name = name
    await session.flush()
    return holiday


async def do_remove_holiday(session: AsyncSession, *, day: dt.date) -> bool:
    holiday = await session.get(BusinessHoliday, day)
    if holiday is None:
        return False
    await session.delete(holiday)
    await session.flush()
    return True
