"""Pooled connections: one idle past the ping window is pinged before use, and one whose server
side died while it sat in the pool is replaced without the caller seeing an error."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import AsyncAdaptedQueuePool

from api import db
from api.config import get_settings
from api.db import make_engine

pytestmark = [pytest.mark.integration]


async def test_a_dead_idle_connection_is_replaced_before_use(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("needs a server whose backend can be terminated")
    engine = make_engine(database_url)
    killer = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            first_pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        async with killer.connect() as conn:
            await conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": first_pid})
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)  # the connection is now "idle"
        async with engine.connect() as conn:  # the ping fails, the pool connects afresh
            second_pid = await conn.scalar(sa.text("SELECT pg_backend_pid()"))
        assert second_pid != first_pid
    finally:
        await engine.dispose()
        await killer.dispose()


async def test_a_recently_used_connection_is_not_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(database_url)
    pings: list[object] = []
    real_ping = engine.sync_engine.dialect.do_ping

    def counting_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.sync_engine.dialect, "do_ping", counting_ping)
    try:
        for _ in range(3):
            async with engine.connect() as conn:
                assert await conn.scalar(sa.text("SELECT 1")) == 1
        assert pings == []
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT 1")) == 1
        assert len(pings) == 1
    finally:
        await engine.dispose()


def test_the_service_pool_is_sized_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """DB_POOL_SIZE / DB_MAX_OVERFLOW reach the pool: connections beyond the pool are closed
    when handed back, so a pool smaller than the load reconnects on every checkout."""
    settings = get_settings().model_copy(
        update={
            "database_url": "postgresql+asyncpg://tratativa@127.0.0.1:5432/tratativa",
            "db_pool_size": 7,
            "db_max_overflow": 3,
        }
    )
    monkeypatch.setattr(db, "get_settings", lambda: settings)
    engine = db.get_engine.__wrapped__()  # type: ignore[attr-defined]
    pool = engine.sync_engine.pool
    assert isinstance(pool, AsyncAdaptedQueuePool)
    assert (pool.size(), pool._max_overflow) == (7, 3)
