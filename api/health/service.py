"""Readiness checks of the service's dependencies."""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from redis.asyncio import Redis

from api.config import Settings
from api.db import get_engine


async def check_database() -> str:
    async with get_engine().connect() as connection:
        await connection.execute(sa.text("SELECT 1"))
    return "ok"


async def check_redis(url: str) -> str:
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()
    return "ok"


async def check_rasa(url: str) -> str:
    async with httpx.AsyncClient(timeout=3) as client:
        response = await client.get(url.rstrip("/") + "/")
        response.raise_for_status()
    return "ok"


async def get_readiness(settings: Settings) -> dict[str, str]:
    """Each dependency's state: 'ok', 'not configured', or the error class (never secrets)."""
    checks: dict[str, str] = {}
    probes = {
        "database": (check_database, ()),
        "redis": (check_redis, (settings.redis_url,)) if settings.redis_url else None,
        "rasa": (check_rasa, (settings.rasa.url,)) if settings.rasa.url else None,
    }
    for name, probe in probes.items():
        if probe is None:
            checks[name] = "not configured"
            continue
        func, args = probe
        try:
            checks[name] = await func(*args)
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    return checks
