"""Media fetch retries back off exponentially up to a cap."""

from __future__ import annotations

import pytest

from api.channels.whatsapp_twilio import fetching

pytestmark = pytest.mark.unit


def test_retry_delays_grow_and_are_capped() -> None:
    delays = [fetching.retry_delay(n).total_seconds() for n in range(1, 14)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0]
    assert delays == sorted(delays) and delays[-1] == fetching.MAX_RETRY_SECONDS
