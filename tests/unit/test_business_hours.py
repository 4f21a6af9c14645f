"""Business hours in the firm's time zone: open/closed at the edges, the next opening across a
weekend, and the phrase the bot tells a waiting infringer."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from api.config import Settings
from api.handoff.business_hours import BusinessHours

pytestmark = pytest.mark.unit

SP = ZoneInfo("America/Sao_Paulo")
WEEKDAYS = BusinessHours(SP, 9, 18, frozenset({0, 1, 2, 3, 4}))


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A moment in São Paulo in the week of Monday 2026-11-30 (day 0 = Monday)."""
    return dt.datetime(2026, 11, 30, hour, minute, tzinfo=SP) + dt.timedelta(days=day)


def test_open_from_the_first_hour_until_before_the_last() -> None:
    assert not WEEKDAYS.is_open(at(0, 8, 59))
    assert WEEKDAYS.is_open(at(0, 9, 0))
    assert WEEKDAYS.is_open(at(4, 17, 59))
    assert not WEEKDAYS.is_open(at(4, 18, 0))
    assert not WEEKDAYS.is_open(at(5, 10, 0))  # Saturday


def test_a_utc_moment_is_read_in_the_firms_time_zone() -> None:
    # 11:30 UTC is 08:30 in São Paulo (UTC-3): still closed; 12:00 UTC is 09:00: open.
    assert not WEEKDAYS.is_open(dt.datetime(2026, 11, 30, 11, 30, tzinfo=dt.UTC))
    assert WEEKDAYS.is_open(dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC))


def test_the_next_opening_skips_the_weekend() -> None:
    assert WEEKDAYS.next_opening(at(4, 19)) == at(7, 9)  # Friday evening → Monday 9h
    assert WEEKDAYS.next_opening(at(0, 7)) == at(0, 9)  # before opening → the same day
    assert WEEKDAYS.next_opening(at(0, 9)) == at(1, 9)  # at opening → the next opening


@pytest.mark.parametrize(
    ("moment", "phrase"),
    [
        (at(0, 10), "em breve, ainda hoje no horário de atendimento"),
        (at(0, 7), "hoje a partir das 9h (horário de Brasília)"),
        (at(0, 20), "amanhã a partir das 9h (horário de Brasília)"),
        (at(4, 20), "na segunda-feira a partir das 9h (horário de Brasília)"),
    ],
)
def test_the_reply_time_as_the_bot_says_it(moment: dt.datetime, phrase: str) -> None:
    assert WEEKDAYS.describe_reply_time(moment) == phrase


def test_a_weekend_opening_is_said_with_the_right_article() -> None:
    saturday_only = BusinessHours(SP, 9, 12, frozenset({5}))
    assert saturday_only.describe_reply_time(at(1, 10)) == (
        "no sábado a partir das 9h (horário de Brasília)"
    )
    sunday_only = BusinessHours(SP, 9, 12, frozenset({6}))
    assert sunday_only.describe_reply_time(at(1, 10)).startswith("no domingo")


def test_no_business_day_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="no business day"):
        BusinessHours(SP, 9, 18, frozenset()).next_opening(at(0, 10))


def test_built_from_settings() -> None:
    hours = BusinessHours.from_settings(
        Settings(
            business_timezone="America/Manaus",
            business_hours_start=8,
            business_hours_end=17,
            business_days="0, 2,4",
        )
    )
    assert hours == BusinessHours(ZoneInfo("America/Manaus"), 8, 17, frozenset({0, 2, 4}))
