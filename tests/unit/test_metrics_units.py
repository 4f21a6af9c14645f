"""Metrics pieces without a database: percentiles, periods, the fold's business seconds against
the calendar's own, flat CSV columns, chart scaling and the pt-BR formats."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from api.config import Settings
from api.errors import ValidationFailed
from api.metrics.export import columns_of, flatten, to_csv
from api.metrics.fold import Folder
from api.metrics.schemas import ChannelRow, EventCountRow, Stat, Timing
from api.metrics.service import parse_period, percentile
from api.operations.calendar import build_calendar
from api.panel.metrics_screens import Bar, bar_chart, duration, pct

pytestmark = pytest.mark.unit


def test_percentile_is_percentile_cont() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert percentile(values, 0.5) == 25.0
    assert percentile(values, 0.9) == pytest.approx(37.0)
    assert percentile([7.0], 0.9) == 7.0
    assert percentile([], 0.5) is None


def test_periods() -> None:
    assert parse_period("2026-02", None, None) == (dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert parse_period("2026-12", None, None) == (dt.date(2026, 12, 1), dt.date(2026, 12, 31))
    days = (dt.date(2026, 11, 3), dt.date(2026, 11, 9))
    assert parse_period(None, *days) == days
    for bad in ("2026-13", "2026", "x-y", "1899-01", "9999-12"):
        with pytest.raises(ValidationFailed):
            parse_period(bad, None, None)
    # Either order; days far outside the data are no bound (clamped, never an overflow).
    assert parse_period(None, days[1], days[0]) == days
    assert parse_period(None, dt.date(1, 1, 1), dt.date(9999, 12, 31)) == (
        dt.date(2000, 1, 1),
        dt.date(2100, 12, 31),
    )


def test_fold_business_seconds_equal_the_calendars() -> None:
    calendar = build_calendar(Settings(business_shifts="09:00-12:00,13:00-18:00"))
    folder = Folder(store=None, calendar=calendar)  # type: ignore[arg-type]
    rng = random.Random(13)
    start = dt.datetime(2026, 9, 25, tzinfo=dt.UTC)
    for _ in range(300):
        a = start + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 60))
        b = a + dt.timedelta(minutes=rng.randrange(0, 60 * 24 * 9))
        assert folder.business_seconds(a, b) == calendar.business_seconds_between(a, b)
    # Christmas (a holiday) and a weekend contribute nothing.
    assert (
        folder.business_seconds(
            dt.datetime(2026, 12, 25, 12, tzinfo=dt.UTC),
            dt.datetime(2026, 12, 28, 12, tzinfo=dt.UTC),
        )
        == 0
    )


def test_flat_columns_and_csv() -> None:
    row = ChannelRow(
        channel="whatsapp",
        messages_sent=3,
        delivery_rate=2 / 3,
        bot_first_response=Timing(wall=Stat(n=1, median=60.0, p90=60.0, mean=60.0)),
    )
    flat = flatten(row)
    assert flat["bot_first_response.wall.median"] == 60.0
    assert list(flat) == columns_of(ChannelRow)
    text = to_csv([row], columns_of(ChannelRow)).splitlines()
    header, line = text[0].split(","), text[1].split(",")
    assert dict(zip(header, line, strict=True))["delivery_rate"] == "0.666667"
    assert dict(zip(header, line, strict=True))["bot_first_response.wall.median"] == "60.00"
    money = to_csv(
        [EventCountRow(kind="payment.confirmed", events=1, cases=1, amount=Decimal("10"))]
    )
    assert money.splitlines()[1] == "payment.confirmed,1,1,10.00"
    assert to_csv([], columns_of(EventCountRow)) == "kind,events,cases,amount\n"


def test_bars_scale_to_the_largest_value() -> None:
    chart = bar_chart("x", "t", [Bar("a", 10, "10"), Bar("b", 5, "5"), Bar("c", 0, "0")])
    widths = [row["width"] for row in chart.rows]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    logged = bar_chart("y", "t", [Bar("a", 99999, ""), Bar("b", 9, "")], log=True)
    assert logged.rows[1]["width"] == pytest.approx(logged.rows[0]["width"] / 5, rel=1e-3)


def test_pt_br_formats() -> None:
    assert pct(0.857142) == "85,7%"
    assert pct(None) == "—"
    assert duration(40) == "40s"
    assert duration(720) == "12min"
    assert duration(3900) == "1h 05min"
    assert duration(232140) == "2d 16h"
