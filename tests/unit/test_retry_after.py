"""Retry-After (seconds or an HTTP date) and the outbox's next attempt never sooner."""

from __future__ import annotations

import datetime as dt

import pytest

from api.channels.whatsapp_twilio.sender import parse_retry_after
from api.outbox.service import next_attempt_delay

pytestmark = pytest.mark.unit


def test_retry_after_parses_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("30", now=now) == 30.0
    assert parse_retry_after("Mon, 30 Nov 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Mon, 30 Nov 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("amanhã", now=now) is None
    assert parse_retry_after(None) is None
    assert next_attempt_delay(1, 45.0) >= 45.0
