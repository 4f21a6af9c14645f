"""Quiet hours are read in the firm's time zone and may wrap midnight (22:00-07:00)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from api.config import Settings
from api.operations.calendar import build_calendar
from api.operations.digests import in_quiet_hours

pytestmark = pytest.mark.unit

SP = ZoneInfo("America/Sao_Paulo")
CALENDAR = build_calendar(Settings())


def at(hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, 7, hour, minute, tzinfo=SP)


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(21, 59, False), (22, 0, True), (23, 30, True), (3, 0, True), (6, 59, True), (7, 0, False)],
)
def test_a_window_across_midnight(hour: int, minute: int, quiet: bool) -> None:
    assert in_quiet_hours(dt.time(22), dt.time(7), at(hour, minute), CALENDAR) is quiet


def test_a_daytime_window_and_none() -> None:
    assert in_quiet_hours(dt.time(12), dt.time(13), at(12, 30), CALENDAR)
    assert not in_quiet_hours(dt.time(12), dt.time(13), at(13, 0), CALENDAR)
    assert not in_quiet_hours(None, None, at(3), CALENDAR)
    # 01:30 UTC is 22:30 in São Paulo: quiet.
    utc = dt.datetime(2026, 12, 8, 1, 30, tzinfo=dt.UTC)
    assert in_quiet_hours(dt.time(22), dt.time(7), utc, CALENDAR)
