"""The business calendar: split shifts, weekends, national holidays (Christmas, Carnival from
the optional list), a state's and the firm's own closed days; timers pause outside shifts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from api.config import Settings
from api.errors import ValidationFailed
from api.operations.calendar import BusinessCalendar, build_calendar, parse_shifts

pytestmark = pytest.mark.unit

SP = ZoneInfo("America/Sao_Paulo")


def calendar(**overrides: object) -> BusinessCalendar:
    values: dict[str, object] = {"business_shifts": "09:00-12:00,13:00-18:00"}
    values.update(overrides)
    return build_calendar(Settings(**values))  # type: ignore[arg-type]


SPLIT = calendar()


def sp(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=SP)


def test_split_shift_open_and_closed_at_the_edges() -> None:
    monday = (2026, 11, 30)
    assert not SPLIT.is_open(sp(*monday, 8, 59))
    assert SPLIT.is_open(sp(*monday, 9, 0))
    assert SPLIT.is_open(sp(*monday, 11, 59))
    assert not SPLIT.is_open(sp(*monday, 12, 0))  # lunch
    assert not SPLIT.is_open(sp(*monday, 12, 59))
    assert SPLIT.is_open(sp(*monday, 13, 0))
    assert not SPLIT.is_open(sp(*monday, 18, 0))
    assert not SPLIT.is_open(sp(2026, 12, 5, 10))  # Saturday
    # A UTC moment is read in São Paulo: 15:30 UTC is 12:30 there (lunch).
    assert not SPLIT.is_open(dt.datetime(2026, 11, 30, 15, 30, tzinfo=dt.UTC))
    assert SPLIT.is_open(dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC))


def test_holidays_national_carnival_state_and_the_firms_own() -> None:
    assert not SPLIT.is_open(sp(2026, 12, 25, 10))  # Natal (Friday)
    assert SPLIT.holiday_name(dt.date(2026, 12, 25)) == "Natal"
    assert not SPLIT.is_open(sp(2026, 2, 16, 10))  # Carnaval, Monday
    assert not SPLIT.is_open(sp(2026, 2, 17, 10))  # Carnaval, Tuesday
    assert SPLIT.is_open(sp(2026, 2, 18, 10))  # Ash Wednesday: not observed by default
    assert SPLIT.is_open(sp(2026, 12, 24, 10))  # Christmas Eve: not observed by default
    no_carnival = calendar(business_optional_holidays="")
    assert no_carnival.is_open(sp(2026, 2, 16, 10))
    # São Paulo city's anniversary is municipal; the state's 9 de julho comes with UF=SP.
    assert SPLIT.is_open(sp(2026, 7, 9, 10))
    assert not calendar(business_holidays_state="SP").is_open(sp(2026, 7, 9, 10))
    firm = calendar(business_extra_holidays="2026-12-07")
    assert not firm.is_open(sp(2026, 12, 7, 10))
    assert firm.is_open(sp(2026, 12, 8, 10))


def test_business_time_pauses_at_lunch_nights_weekends_and_holidays() -> None:
    # 1 h from 11:30 → 30 min before lunch, 30 min after: 13:30.
    assert SPLIT.add_business_time(sp(2026, 11, 30, 11, 30), dt.timedelta(hours=1)) == sp(
        2026, 11, 30, 13, 30
    )
    # 2 h from Friday 17:00 → 1 h on Friday, then Monday 09:00 + 1 h.
    assert SPLIT.add_business_time(sp(2026, 12, 4, 17), dt.timedelta(hours=2)) == sp(
        2026, 12, 7, 10
    )
    # Started on a Saturday: the clock starts on Monday at 09:00.
    assert SPLIT.add_business_time(sp(2026, 12, 5, 10), dt.timedelta(minutes=30)) == sp(
        2026, 12, 7, 9, 30
    )
    # Thursday 24/12 17:00 + 2 h: Christmas (Friday) and the weekend are skipped.
    assert SPLIT.add_business_time(sp(2026, 12, 24, 17), dt.timedelta(hours=2)) == sp(
        2026, 12, 28, 10
    )
    # Through Carnival: Friday 13/02 17:00 + 2 h → Wednesday 18/02 10:00.
    assert SPLIT.add_business_time(sp(2026, 2, 13, 17), dt.timedelta(hours=2)) == sp(
        2026, 2, 18, 10
    )
    assert SPLIT.next_open(sp(2026, 11, 30, 12, 15)) == sp(2026, 11, 30, 13)


def test_business_days_keep_the_time_of_day_and_skip_closed_days() -> None:
    assert SPLIT.add_business_days(sp(2026, 11, 30, 10), 3) == sp(2026, 12, 3, 10)
    assert SPLIT.add_business_days(sp(2026, 12, 3, 10), 3) == sp(2026, 12, 8, 10)  # weekend
    assert SPLIT.add_business_days(sp(2026, 12, 23, 10), 3) == sp(2026, 12, 29, 10)  # Natal
    assert SPLIT.add_business_days(sp(2026, 2, 12, 15), 2) == sp(2026, 2, 18, 15)  # Carnaval
    assert SPLIT.add_business_days(sp(2026, 12, 5, 10), 3) == sp(2026, 12, 9, 10)  # from Sat
    assert SPLIT.add_business_days(sp(2026, 11, 30, 10), 0) == sp(2026, 11, 30, 10)


def test_business_seconds_between_counts_only_shifts() -> None:
    hour = 3600.0
    # Monday 08:00 → 20:00: 3 h + 5 h.
    assert SPLIT.business_seconds_between(sp(2026, 11, 30, 8), sp(2026, 11, 30, 20)) == 8 * hour
    # Friday 17:00 → Monday 10:00: 1 h + 1 h.
    assert SPLIT.business_seconds_between(sp(2026, 12, 4, 17), sp(2026, 12, 7, 10)) == 2 * hour
    # Across Christmas: Thursday 24 all day (8 h), Friday 25 none, Monday 28 until 10:00 (1 h).
    assert SPLIT.business_seconds_between(sp(2026, 12, 24, 0), sp(2026, 12, 28, 10)) == 9 * hour
    assert SPLIT.business_seconds_between(sp(2026, 12, 7, 10), sp(2026, 12, 4, 17)) == 0.0
    # The inverse of add_business_time.
    start = sp(2026, 12, 24, 11, 15)
    end = SPLIT.add_business_time(start, dt.timedelta(hours=13, minutes=20))
    assert SPLIT.business_seconds_between(start, end) == (13 * 60 + 20) * 60


def test_the_old_single_shift_settings_still_make_the_calendar() -> None:
    plain = build_calendar(Settings(business_hours_start=8, business_hours_end=17))
    assert plain.shifts == ((dt.time(8), dt.time(17)),)
    assert plain.is_open(sp(2026, 11, 30, 12, 30))
    assert not plain.is_open(sp(2026, 11, 30, 17, 0))


def test_an_admin_override_wins_and_bad_values_are_refused() -> None:
    overridden = build_calendar(Settings(), {"shifts": "08:00-12:00", "days": "0,1,2,3,4,5"})
    assert overridden.is_open(sp(2026, 12, 5, 10))  # Saturday morning now works
    assert not overridden.is_open(sp(2026, 12, 5, 13))
    with pytest.raises(ValidationFailed):
        parse_shifts("09:00-12:00,11:00-18:00")
    with pytest.raises(ValidationFailed):
        parse_shifts("18:00-09:00")
    with pytest.raises(ValidationFailed):
        build_calendar(Settings(), {"days": "9"})
    with pytest.raises(ValidationFailed):
        build_calendar(Settings(), {"timezone": "Mars/Olympus"})
    with pytest.raises(ValueError):
        SPLIT.is_open(dt.datetime(2026, 11, 30, 10))  # naive
