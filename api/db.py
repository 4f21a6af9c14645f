"""Engine, sessions and the one unit of work: commit in one place, side effects after commit."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from api.config import get_settings
from api.errors import ValidationFailed

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

AfterCommit = Callable[[], Awaitable[None]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no offset)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC datetimes")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONType}


class IdMixin:
    id: Mapped[int] = mapped_column(primary_key=True)


class CreatedAtMixin:
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# Set while a request of the API or the panel runs (api/web/inputs.py): text with U+0000, which
# PostgreSQL cannot store (a 500 from the driver), is refused as bad input on both databases.
refuse_nul_text: ContextVar[bool] = ContextVar("refuse_nul_text", default=False)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _refuse_nul_text(
    _conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool
) -> None:
    if refuse_nul_text.get() and _has_nul(parameters):
        raise ValidationFailed("O caractere nulo (U+0000) não é aceito em textos.")


# A pooled connection idle longer than this is pinged before use; one used more recently is
# taken as it is. SQLAlchemy's pool_pre_ping pings on every checkout, and on asyncpg a ping is
# three round trips (BEGIN, an empty query, ROLLBACK): on a panel page that is a fifth of its
# round trips. A connection that died within the window (the database restarted under load)
# fails one statement; SQLAlchemy sees the disconnect and replaces the pool's connections.
PING_AFTER_IDLE_SECONDS = 10.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # new, or in use a moment ago
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # any failure: the pool drops it and connects afresh
            raise DisconnectionError("pooled connection failed its ping") from exc


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """Create an async engine; SQLite gets foreign keys and a busy timeout. Pooled connections
    idle for a while are pinged before use (`PING_AFTER_IDLE_SECONDS`)."""
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": 30})
    engine = create_async_engine(url, **kwargs)
    _ping_idle_connections(engine)
    event.listen(engine.sync_engine, "before_cursor_execute", _refuse_nul_text)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # The sqlite3 module's own transaction handling breaks SAVEPOINT; SQLAlchemy's
            # documented recipe: turn it off and emit BEGIN ourselves.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            # IMMEDIATE takes the write lock up front: a deferred transaction that read, then
            # tries to write after another one committed, fails at once with "database is
            # locked" instead of waiting on the busy timeout.
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


@lru_cache(maxsize=1)
def get_engine() -> AsyncEngine:
    settings = get_settings()
    if settings.database_url.startswith("sqlite"):
        return make_engine(settings.database_url)
    return make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
    )


@lru_cache(maxsize=1)
def get_sessionmaker() -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(get_engine(), expire_on_commit=False)


def on_commit(session: AsyncSession, callback: AfterCommit) -> None:
    """Run `callback` once the unit of work that owns `session` has committed."""
    session.info.setdefault("after_commit", []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    callbacks: list[AfterCommit] = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


@asynccontextmanager
async def unit_of_work(
    maker: async_sessionmaker[AsyncSession] | None = None,
    *,
    after_commit: Callable[[AsyncSession], Awaitable[None]] = run_after_commit,
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on error, then run after-commit hooks
    (`after_commit` runs them: a caller may wrap them, e.g. in a context)."""
    session = (maker or get_sessionmaker())()
    try:
        yield session
        await session.commit()
    except BaseException:
        await session.rollback()
        session.info.pop("after_commit", None)
        raise
    finally:
        await session.close()
    await after_commit(session)
