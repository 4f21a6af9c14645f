"""Test infrastructure: a real database (PostgreSQL or SQLite) migrated once, rolled back per test.

TEST_DATABASE_URL picks the backend (`make test` runs the suite on both); TEST_REDIS_URL enables
the Redis tests.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from api.config import get_settings
from api.db import get_engine, get_sessionmaker, make_engine
from api.engine.client import close_gateway

_WORK_DIR = Path(tempfile.mkdtemp(prefix="tratativa-tests-"))


def _default_url() -> str:
    return f"sqlite+aiosqlite:///{_WORK_DIR / 'test.db'}"


def _admin_url(url: str) -> str:
    return (
        make_url(url)
        .set(database=os.environ.get("TEST_PG_ADMIN_DB", "test"))
        .render_as_string(hide_password=False)
    )


async def _pg_execute(url: str, statement: str) -> None:
    engine = make_engine(_admin_url(url), isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(sa.text(statement))
    await engine.dispose()


def create_scratch_database(base_url: str) -> str:
    """A new, empty database for this run (PostgreSQL) or a new file (SQLite)."""
    name = f"tratativa_test_{uuid.uuid4().hex[:10]}"
    if base_url.startswith("postgresql"):
        asyncio.run(_pg_execute(base_url, f'CREATE DATABASE "{name}"'))
        return make_url(base_url).set(database=name).render_as_string(hide_password=False)
    return f"sqlite+aiosqlite:///{_WORK_DIR / (name + '.db')}"


def drop_scratch_database(url: str) -> None:
    if url.startswith("postgresql"):
        name = make_url(url).database
        asyncio.run(_pg_execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def backend() -> str:
    url = os.environ.get("TEST_DATABASE_URL", _default_url())
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """The migrated test database; DATABASE_URL points the application at it."""
    from api.migrate import upgrade

    url = create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "test-secret-key-that-is-long-enough-for-hs256")
    os.environ["STORAGE_DIR"] = str(_WORK_DIR / "storage")
    get_settings.cache_clear()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()
    upgrade(url)
    yield url
    drop_scratch_database(url)


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session inside a transaction that is rolled back after the test; commits are savepoints."""
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await transaction.rollback()


@pytest.fixture(scope="session", autouse=True)
async def _close_the_gateway_at_the_end() -> AsyncIterator[None]:
    """The process's Rasa gateway keeps an aiohttp session in the session's event loop."""
    yield
    await close_gateway()


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("TEST_REDIS_URL not set")
    return url
