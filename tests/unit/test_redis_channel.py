"""Redis pub/sub channels carry the database number of REDIS_URL: pub/sub ignores the number,
so two deployments (or two test runs) on one server would otherwise hear each other."""

from __future__ import annotations

import pytest

from api.config import redis_channel

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "channel"),
    [
        ("redis://127.0.0.1:6379/15", "tratativa:events@15"),
        ("redis://127.0.0.1:6379/14", "tratativa:events@14"),
        ("redis://cache.internal", "tratativa:events@0"),
        ("rediss://user:secret@cache.internal:6380/2", "tratativa:events@2"),
        ("redis://cache.internal/?db=3", "tratativa:events@3"),
        ("unix:///run/redis.sock?db=5", "tratativa:events@5"),
        ("unix:///run/redis.sock", "tratativa:events@0"),
    ],
)
def test_the_channel_names_the_database_number(url: str, channel: str) -> None:
    assert redis_channel(url, "tratativa:events") == channel
