"""Durable consumers: each reads the stream after commit, in order, with its own cursor.

A consumer handles a batch of events and advances its cursor in ONE transaction, together
with whatever it writes itself: a crash before that commit undoes both (the batch is handled
again, and its database effects were never kept); after it, the cursor has moved past the
batch (it is never handled again). Effects outside the database (a Redis publish) happen at
least once: a subscriber drops a repeated `event_id`.

Order and gaps. Ids come from a sequence when a row is inserted, not when its transaction
commits: on PostgreSQL a transaction can take id 10, another take id 11 and commit first. A
consumer that moved its cursor to 11 would never see 10. So the stream is read in
(tx_id, id) order, where tx_id is the writing transaction's id (`pg_current_xact_id()`), and
only below the oldest transaction still running in this database (see _PG_HORIZON): every
transaction below that horizon has finished, so no event can appear there any more, and the order of what
is below it never changes. An event of a transaction still running waits until it commits (or
is dropped with its rollback). Within one transaction events keep their id order; a
transaction that started after another one committed has a larger tx_id, so causally ordered
events stay ordered. On SQLite every transaction takes the write lock up front
(BEGIN IMMEDIATE): transactions that write are serialised, ids follow commit order, tx_id is 0.

Two processes never run the same consumer at once: the cursor row is locked (FOR UPDATE SKIP
LOCKED; the other process skips it and the holder picks up what is new).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from api.db import get_engine, get_sessionmaker, unit_of_work, utcnow
from api.events.models import EventConsumer, StoredEvent
from api.events.service import EventRecord, to_record

log = logging.getLogger(__name__)

Handler = Callable[[AsyncSession, EventRecord], Awaitable[None]]
BatchHandler = Callable[[AsyncSession, Sequence[EventRecord]], Awaitable[None]]
WAKE_CHANNEL = "tratativa:events:wake"


@dataclass(frozen=True)
class Consumer:
    """A named, durable reader of the stream.

    handle: called once per event, in order, inside the transaction that moves the cursor.
    kinds: the kinds it wants (None: all); others are passed over.
    start_at_head: a consumer seen for the first time starts after the newest event instead
        of at the beginning (live notifications need no history).
    inline: also drained in the committing process right after each commit that emitted
        events (low latency), besides the worker's runner.
    prepare: called once per batch, in the same transaction, before `handle` sees its first
        event (a consumer reads at once what the batch's events will each ask for).
    """

    name: str
    handle: Handler
    kinds: frozenset[str] | None = None
    batch_size: int = 100
    start_at_head: bool = False
    inline: bool = False
    prepare: BatchHandler | None = None


_registry: dict[str, Consumer] = {}
_excluded_here: set[str] = set()


def register_consumer(consumer: Consumer) -> Consumer:
    """Make `consumer` run in the worker (and inline, if it asks). Re-registering a name
    replaces it."""
    _registry[consumer.name] = consumer
    return consumer


def unregister_consumer(name: str) -> None:
    _registry.pop(name, None)


def exclude_here(name: str) -> None:
    """Never run consumer `name` in this process (e.g. live notifications in a worker without
    Redis: its in-process bus has no browsers to reach)."""
    _excluded_here.add(name)


def get_consumers() -> Sequence[Consumer]:
    """The registered consumers this process runs."""
    _load_builtin_consumers()
    return [c for name, c in _registry.items() if name not in _excluded_here]


def _load_builtin_consumers() -> None:
    # Imported here so that api.events depends on no consumer package.
    import api.engine.commands
    import api.metrics.consumer
    import api.notifications.live
    import api.operations.consumer
    import api.operations.live  # noqa: F401


# The statements of every pass, built once (building them and their cache keys cost more CPU
# than running them): each call binds its values. Built on first use, not at import (that
# could configure the mappers before every model is imported).


@functools.cache
def _head_statement() -> sa.Select[int, int]:
    return (
        sa.select(StoredEvent.tx_id, StoredEvent.id)
        .order_by(StoredEvent.tx_id.desc(), StoredEvent.id.desc())
        .limit(1)
    )


@functools.cache
def _lock_cursor_statement() -> sa.Select[EventConsumer]:
    """The cursor row of consumer `name`, locked; skipped while another process holds it."""
    return (
        sa.select(EventConsumer)
        .where(EventConsumer.name == sa.bindparam("name", type_=EventConsumer.name.type))
        .with_for_update(skip_locked=True)
    )


@functools.cache
def _count_cursor_statement() -> sa.Select[int]:
    return (
        sa.select(sa.func.count())
        .select_from(EventConsumer)
        .where(EventConsumer.name == sa.bindparam("name", type_=EventConsumer.name.type))
    )


@functools.cache
def _move_cursor_statement() -> sa.Update:
    """Move consumer `p_name`'s cursor (a Core UPDATE of the row the pass holds locked: what
    the unit of work's flush of the changed attributes wrote, without the flush)."""
    table = cast(sa.Table, EventConsumer.__table__)
    return (
        sa.update(table)
        .where(table.c.name == sa.bindparam("p_name", type_=table.c.name.type))
        .values(
            last_tx_id=sa.bindparam("p_tx_id", type_=table.c.last_tx_id.type),
            last_event_id=sa.bindparam("p_event_id", type_=table.c.last_event_id.type),
            updated_at=sa.bindparam("p_updated_at", type_=table.c.updated_at.type),
        )
    )


async def _head(session: AsyncSession) -> tuple[int, int]:
    row = (await session.execute(_head_statement())).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def _lock_cursor(session: AsyncSession, consumer: Consumer) -> EventConsumer | None:
    """The consumer's cursor row, locked for this transaction; None while another process
    holds it."""
    query = _lock_cursor_statement()
    params = {"name": consumer.name}
    cursor = await session.scalar(query, params)
    if cursor is not None:
        return cursor
    exists = await session.scalar(_count_cursor_statement(), params)
    if exists:
        return None  # locked by another process
    tx_id, event_id = await _head(session) if consumer.start_at_head else (0, 0)
    insert = _insert(session)(EventConsumer).values(
        name=consumer.name, last_tx_id=tx_id, last_event_id=event_id, updated_at=utcnow()
    )
    await session.execute(insert.on_conflict_do_nothing(index_elements=["name"]))
    return await session.scalar(query, params)


def _insert(session: AsyncSession) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert

        return insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


# The oldest transaction still running that could write to THIS database, as seen by the
# statement's own snapshot: transaction ids are cluster-wide, so pg_snapshot_xmin alone would
# let a long transaction in another database (a migration, a report, another app) hold every
# consumer back. An in-flight id is left out only when pg_stat_activity positively shows it
# belongs to another database (a fact that never changes for that transaction); anything
# unknown stays in (safe: it only delays). With nothing in flight, the snapshot's xmax.
_PG_HORIZON: sa.ColumnClause[int] = sa.literal_column(
    """COALESCE(
        (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
         WHERE (x::text::bigint % 4294967296) NOT IN (
             SELECT backend_xid::text::bigint FROM pg_stat_activity
             WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database())),
        pg_snapshot_xmax(pg_current_snapshot())::text::bigint)"""
)


def _below_horizon(session: AsyncSession) -> sa.ColumnElement[bool]:
    return _horizon_condition(_on_postgresql(session))


def _on_postgresql(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _horizon_condition(postgresql: bool) -> sa.ColumnElement[bool]:
    if postgresql:
        return StoredEvent.tx_id < _PG_HORIZON
    return sa.true()


async def read_batch(
    session: AsyncSession,
    *,
    after: tuple[int, int],
    limit: int,
    kinds: Iterable[str] | None = None,
) -> Sequence[StoredEvent]:
    """Committed events after `after` (a (tx_id, id) position), in stream order, never past
    the oldest transaction still running."""
    query = _read_batch_statement(
        _on_postgresql(session), None if kinds is None else frozenset(kinds)
    )
    params = {"after_tx_id": after[0], "after_id": after[1], "limit": limit}
    return (await session.scalars(query, params)).all()


@functools.cache
def _read_batch_statement(postgresql: bool, kinds: frozenset[str] | None) -> sa.Select[StoredEvent]:
    """`read_batch`'s SELECT on PostgreSQL or not (the horizon: `_below_horizon`), for these
    kinds (one statement per set of kinds: the consumers are fixed at start-up). The position
    is bound as BIGINT: a tx_id passes 2**31 (asyncpg refuses such a value for an INTEGER)."""
    query = sa.select(StoredEvent).where(
        sa.tuple_(StoredEvent.tx_id, StoredEvent.id)
        > sa.tuple_(
            sa.bindparam("after_tx_id", type_=sa.BigInteger),
            sa.bindparam("after_id", type_=sa.BigInteger),
        ),
        _horizon_condition(postgresql),
    )
    if kinds is not None:
        # One bound value per kind, not an expanding list: the same IN (…), without rewriting
        # the statement's SQL at every execution (the kinds are fixed for the statement).
        query = query.where(StoredEvent.kind.in_([sa.literal(kind) for kind in sorted(kinds)]))
    return query.order_by(StoredEvent.tx_id, StoredEvent.id).limit(
        sa.bindparam("limit", type_=sa.Integer)
    )


@functools.cache
def _horizon_statement() -> sa.Select[int, int]:
    """(PostgreSQL) The stream's horizon now (see `_PG_HORIZON`: `read_batch` reads below it)
    and the snapshot's xmax (every transaction committed before this statement began has a
    lower id). Read before a batch: every event below that horizon is visible to the read."""
    return sa.select(
        _PG_HORIZON, sa.literal_column("pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
    )


async def run_consumer_once(
    consumer: Consumer, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> int:
    """Handle one batch and move the cursor past it, in one transaction. Returns how many
    events were handled (0: nothing new, or another process is running this consumer)."""
    return (await _run_once(consumer, maker=maker))[0] or 0


async def _run_once(
    consumer: Consumer,
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    horizon: bool = False,
) -> tuple[int | None, tuple[int, int] | None]:
    """`run_consumer_once`, telling "another pass holds the cursor" (None) from "nothing new";
    with `horizon` (PostgreSQL), also `_horizon_statement`'s (horizon, xmax) from before the
    read."""
    async with unit_of_work(maker) as session:
        cursor = await _lock_cursor(session, consumer)
        if cursor is None:
            return None, None
        seen: tuple[int, int] | None = None
        if horizon and _on_postgresql(session):
            found = (await session.execute(_horizon_statement())).one()
            seen = (int(found[0]), int(found[1]))
        rows = await read_batch(
            session,
            after=(cursor.last_tx_id, cursor.last_event_id),
            limit=consumer.batch_size,
            kinds=consumer.kinds,
        )
        records = [to_record(row) for row in rows]
        if consumer.prepare is not None and records:
            await consumer.prepare(session, records)
        for record in records:
            await consumer.handle(session, record)
        if rows:
            moved = cast(
                sa.CursorResult[Any],
                await session.execute(
                    _move_cursor_statement(),
                    {
                        "p_name": cursor.name,
                        "p_tx_id": rows[-1].tx_id,
                        "p_event_id": rows[-1].id,
                        "p_updated_at": utcnow(),
                    },
                ),
            )
            if moved.rowcount != 1:  # as the unit of work's flush checked
                raise StaleDataError(f"event consumer {cursor.name!r}: cursor row is gone")
        return len(rows), seen


async def drain(
    consumer: Consumer, *, maker: async_sessionmaker[AsyncSession] | None = None
) -> int:
    """Run batches until nothing new is left (a batch shorter than batch_size was the last)."""
    return (await _drain(consumer, maker=maker))[0]


async def _drain(
    consumer: Consumer,
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    max_batches: int | None = None,
    horizon: bool = False,
) -> tuple[int, bool, tuple[int, int] | None]:
    """`drain` (at most `max_batches` batches); whether it stopped because another pass held
    the cursor; with `horizon`, the (horizon, xmax) of the last batch if it was the last one
    (every committed event of the consumer's kinds below that horizon is handled)."""
    total = 0
    batches = 0
    while True:
        handled, seen = await _run_once(consumer, maker=maker, horizon=horizon)
        if handled is None:
            return total, True, None
        total += handled
        batches += 1
        if handled < consumer.batch_size:
            return total, False, seen
        if max_batches is not None and batches >= max_batches:
            return total, False, None


async def get_cursor(session: AsyncSession, name: str) -> tuple[int, int] | None:
    cursor = await session.get(EventConsumer, name)
    return (cursor.last_tx_id, cursor.last_event_id) if cursor is not None else None


# Waking up after commit ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Due:
    """What a round must drain: the consumers of `kinds` (None: every consumer), the inline
    ones only when some commit's own process did not drain them (`inline`)."""

    kinds: set[str] | None
    inline: bool = True

    def wants(self, consumer: Consumer) -> bool:
        if consumer.inline and not self.inline:
            return False  # every commit's own process drained it right after committing
        return (
            self.kinds is None
            or consumer.kinds is None
            or not consumer.kinds.isdisjoint(self.kinds)
        )


_EVERYONE = _Due(kinds=None)


class _Waker:
    """A runner's wake-up: set by commits (this process's, or another's through Redis), with
    the kinds they emitted gathered until the runner takes them (None: unknown, so every
    consumer is due), and whether any came from a process that did not drain the inline
    consumers itself."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.kinds: set[str] | None = set()
        self.inline = False

    def wake(self, kinds: Iterable[str] | None, *, inline_done: bool = False) -> None:
        wanted = set(kinds) if kinds is not None else None
        if not wanted or self.kinds is None:
            self.kinds = None  # a commit that did not say which kinds: everyone's round
        else:
            self.kinds |= wanted
        self.inline = self.inline or not inline_done
        self.event.set()

    def take(self) -> _Due:
        """What the commits since the last call call for, and clear the wake-up."""
        due = _Due(kinds=self.kinds, inline=self.inline or self.kinds is None)
        self.kinds, self.inline = set(), False
        self.event.clear()
        return due


_local_wakers: set[_Waker] = set()
# What a wake-up published on Redis carries: the kinds, comma-separated ("*", or an older
# process's "1": unknown), after "+" when the committing process drained its inline consumers.
_KINDS_SEPARATOR = ","
_INLINE_DONE = "+"


def _wake_message(kinds: frozenset[str], *, inline_done: bool) -> str:
    listed = _KINDS_SEPARATOR.join(sorted(kinds)) if kinds else "*"
    return f"{_INLINE_DONE}{listed}" if inline_done else listed


def _read_wake_message(data: object) -> tuple[set[str] | None, bool]:
    """(kinds or None when unknown, whether the committing process drained its inline ones)."""
    text = data.decode() if isinstance(data, bytes) else str(data)
    inline_done = text.startswith(_INLINE_DONE)
    text = text.removeprefix(_INLINE_DONE)
    kinds = {kind for kind in text.split(_KINDS_SEPARATOR) if kind and kind not in ("*", "1")}
    return kinds or None, inline_done


def _wake_channel() -> str:
    from api.config import get_settings, redis_channel

    return redis_channel(get_settings().redis_url or "", WAKE_CHANNEL)


@lru_cache(maxsize=1)
def _redis() -> Any:
    from api.config import get_settings

    url = get_settings().redis_url
    if not url:
        return None
    from redis.asyncio import Redis

    return Redis.from_url(url)


async def wake_committed(bind: object, kinds: frozenset[str] = frozenset()) -> None:
    """Run after each commit that emitted events (of `kinds`) on `bind` (an AsyncEngine;
    anything else wakes no inline consumer here), with or without a session: wake this
    process's runners, drain the inline consumers that want those kinds here, and wake other
    processes' runners through Redis.

    The inline drains are coalesced per consumer in this process: while one runs, the commits
    that come meanwhile share ONE more pass (which starts after they committed) instead of each
    locking the cursor and reading the stream again. The caller waits for a pass that covers
    its commit (unless a backlog of more than INLINE_MAX_BATCHES batches is ahead of it: the
    pass stops there and the worker's runner drains the rest; or an older transaction still
    running holds its events back for more than HELD_WAIT_SECONDS), unless it runs inside
    `inline_drains_in_background()` (the bot turn, which delivers its replies first) or is
    itself a consumer's pass: then the pass runs as a background task of this process. Either
    way the cursor is durable: what this process does not get to, the worker's runner does."""
    # On an AsyncEngine this process drains the inline consumers itself (below): the runners
    # need not, on this commit's account.
    inline_done = isinstance(bind, AsyncEngine)
    for waker in list(_local_wakers):
        waker.wake(kinds, inline_done=inline_done)
    if isinstance(bind, AsyncEngine):
        # A consumer's own commit (inside a pass) never waits for another pass: two inline
        # consumers that emit what the other reads would otherwise wait for each other.
        background = _in_background.get() or asyncio.current_task() in _background_drains
        waits = []
        for consumer in get_consumers():
            wanted = consumer.kinds is None or not consumer.kinds.isdisjoint(kinds)
            if consumer.inline and wanted:
                waits.append(_drainer(consumer, bind).request(urgent=not background))
        if not background:
            for wait in waits:
                await wait
    redis = _redis()
    if redis is not None:
        with contextlib.suppress(Exception):
            await redis.publish(_wake_channel(), _wake_message(kinds, inline_done=inline_done))


_in_background: ContextVar[bool] = ContextVar("inline_drains_in_background", default=False)


@contextlib.contextmanager
def inline_drains_in_background() -> Iterator[None]:
    """Commits inside this block do not wait for the inline consumers' pass (it still runs,
    in the background of this process; `wait_for_inline_drains` waits for it)."""
    token = _in_background.set(True)
    try:
        yield
    finally:
        _in_background.reset(token)


# A pass nobody waits for (requested from the background: a webhook's or a bot turn's commit)
# starts this long after the first request, so that the commits of a busy moment share it: under
# load each commit would otherwise cost every inline consumer a pass of its own (lock the cursor,
# read the stream, move the cursor). A request somebody waits for (an analyst's action, a turn
# catching up) starts the pass at once. 100 ms covers a bot turn: the alerts consumer wants both
# the webhook's message.received and the turn's message.sent, which then share one pass (with
# 50 ms they took two: 2.1 passes per WhatsApp message in the service); an alert or a live
# notification shows at most this much later.
LINGER_SECONDS = 0.1
# How long an inline pass that found the cursor held by another pass keeps trying again.
BUSY_RETRY_SECONDS = 2.0
# How long the callers of a pass keep waiting while an older transaction still running holds
# the stream's horizon below their commits (usually another request's, a few ms; a long one,
# an import, must not hold every analyst's action longer than this), and how soon the pass runs
# again meanwhile.
HELD_WAIT_SECONDS = 1.0
HELD_RETRY_SECONDS = 0.02
# At most this many batches per inline pass. A pass handles the few events of the moment; a
# backlog (the worker was stopped, a migration or an import wrote events) is the worker's
# runner's: drained inline, it would hold up the request that waits for the pass (an
# analyst's action) for as long as the whole backlog takes.
INLINE_MAX_BATCHES = 5


class _Drainer:
    """One inline consumer on one engine in one event loop: at most one pass runs at a time;
    requests made while it runs are served together by the next pass, and a pass nobody waits
    for lingers `LINGER_SECONDS` first to gather the requests of the moment."""

    def __init__(self, consumer: Consumer, engine: AsyncEngine) -> None:
        self.consumer = consumer
        self.engine = engine
        self.maker = async_sessionmaker(engine, expire_on_commit=False)
        self.task: asyncio.Task[None] | None = None
        self.waiting: list[asyncio.Future[None]] = []
        self.urgent = asyncio.Event()

    def request(self, *, urgent: bool = True) -> asyncio.Future[None]:
        """A future done once a pass that started after this call has finished. `urgent`: the
        caller waits for it, so the pass does not linger."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self.waiting.append(done)
        if urgent:
            self.urgent.set()
        if self.task is None or self.task.done():
            self.task = loop.create_task(self._run())
            _background_drains.add(self.task)
            self.task.add_done_callback(_background_drains.discard)
        elif asyncio.current_task() is self.task:
            # The consumer's own commit woke it: the next pass is this task's next round, which
            # cannot start while this one waits for it.
            settled: asyncio.Future[None] = loop.create_future()
            settled.set_result(None)
            return settled
        return done

    async def _run(self) -> None:
        served: list[asyncio.Future[None]] = []
        busy_since: float | None = None
        held_since: float | None = None
        # The callers held back (below): the xmax of the first pass that served them. Their
        # commits lie below it; a pass covers them once its horizon has reached it.
        targets: dict[asyncio.Future[None], int] = {}
        try:
            while self.waiting:
                pause = LINGER_SECONDS if held_since is None else HELD_RETRY_SECONDS
                if not self.urgent.is_set() and pause > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.urgent.wait(), pause)
                # Somebody waits for this pass: it must cover their commits (see below).
                waited_for = self.urgent.is_set() or held_since is not None
                self.urgent.clear()
                served, self.waiting = self.waiting, []
                busy = False
                seen: tuple[int, int] | None = None
                try:
                    _, busy, seen = await _drain(
                        self.consumer,
                        maker=self.maker,
                        max_batches=INLINE_MAX_BATCHES,
                        horizon=waited_for,
                    )
                except Exception:
                    log.exception(
                        "event consumer %s failed (the worker retries)", self.consumer.name
                    )
                now = asyncio.get_running_loop().time()
                if seen is not None and seen[0] < seen[1]:
                    # An older transaction still running held the horizon below this pass's
                    # snapshot: events committed after it began were not readable yet, and the
                    # commits these callers wait for may be among them. They keep waiting and
                    # the pass runs again shortly, until its horizon reaches the xmax of the
                    # pass that first served them, for at most HELD_WAIT_SECONDS (then they
                    # are released; the events are handled by the pass after that
                    # transaction's commit or the worker's poll).
                    horizon, xmax = seen
                    held = [done for done in served if targets.setdefault(done, xmax) > horizon]
                    held_since = now if held_since is None else held_since
                    if held and now - held_since < HELD_WAIT_SECONDS:
                        served = [done for done in served if done not in held]
                        self.waiting = held + self.waiting
                    else:
                        held_since = None
                else:
                    held_since = None
                for done in served:
                    targets.pop(done, None)
                _release(served)
                served = []
                if held_since is not None:
                    continue
                if not busy:
                    busy_since = None
                    continue
                # Another pass (the worker's runner, another service process) held the cursor:
                # it may have read the stream before these commits, and nothing else would
                # bring them here before the next commit or the worker's next poll. Try again
                # after a linger, for at most BUSY_RETRY_SECONDS (then the worker's poll does).
                busy_since = now if busy_since is None else busy_since
                if now - busy_since < BUSY_RETRY_SECONDS and not self.waiting:
                    self.waiting.append(asyncio.get_running_loop().create_future())
        finally:  # cancelled (shutdown): nobody waits for ever
            _release(served)
            _release(self.waiting)


def _release(waiting: list[asyncio.Future[None]]) -> None:
    for done in waiting:
        if not done.done():
            done.set_result(None)


_drainers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, int], _Drainer]]
_drainers = weakref.WeakKeyDictionary()
_background_drains: set[asyncio.Task[None]] = set()


def _drainer(consumer: Consumer, engine: AsyncEngine) -> _Drainer:
    here = _drainers.setdefault(asyncio.get_running_loop(), {})
    key = (consumer.name, id(engine))
    found = here.get(key)
    if found is None or found.consumer is not consumer or found.engine is not engine:
        found = here[key] = _Drainer(consumer, engine)
    return found


async def drain_shared(consumer: Consumer, *, engine: AsyncEngine | None = None) -> None:
    """Wait for a pass of `consumer` that starts after this call, shared with the other callers
    and commits of this process that want one meanwhile (see `wake_committed`)."""
    await _drainer(consumer, engine or get_engine()).request()


async def wait_for_inline_drains() -> None:
    """Let the inline consumers' passes running in this process finish (shutdown, tests)."""
    while _background_drains:
        await asyncio.gather(*list(_background_drains), return_exceptions=True)


async def _listen_for_wakes(waker: _Waker) -> None:
    redis = _redis()
    if redis is None:
        return
    while True:
        try:
            pubsub = redis.pubsub()
            await pubsub.subscribe(_wake_channel())
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    kinds, inline_done = _read_wake_message(item.get("data"))
                    waker.wake(kinds, inline_done=inline_done)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("event wake-up subscription lost; polling meanwhile")
            await asyncio.sleep(5)


# How long the worker's runner waits after a wake-up before its round (see run_event_consumers).
RUNNER_LINGER_SECONDS = 0.2


async def run_event_consumers(
    stop: asyncio.Event,
    *,
    poll_seconds: float = 2.0,
    consumers: Sequence[Consumer] | None = None,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> None:
    """The worker's runner: drain every consumer, then wait for a commit's wake-up (this
    process, or another one through Redis) or `poll_seconds`, whichever comes first. A round
    woken by commits drains the consumers that want the kinds those commits emitted, leaving
    the inline ones to the committing processes that drained them already (a wake-up that does
    not say, and every poll, drain them all: what a round leaves — a lost wake-up, an inline
    pass stopped by a backlog or held back by an older transaction — waits at most for the
    poll). A failing consumer is logged and retried on the next round; the others go on."""
    waker = _Waker()
    _local_wakers.add(waker)
    listener = asyncio.create_task(_listen_for_wakes(waker))
    due = _EVERYONE  # the first round
    try:
        while not stop.is_set():
            for consumer in consumers if consumers is not None else get_consumers():
                if not due.wants(consumer):
                    continue  # nothing it must read was committed since its last pass
                try:
                    await drain(consumer, maker=maker or get_sessionmaker())
                except Exception:
                    log.exception("event consumer %s failed; retrying", consumer.name)
            stopping = asyncio.ensure_future(stop.wait())
            woken = asyncio.ensure_future(waker.event.wait())
            await asyncio.wait(
                {stopping, woken}, timeout=poll_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            for task in (stopping, woken):
                task.cancel()
            if waker.event.is_set() and not stop.is_set():
                # Woken by a commit: let the commits of the moment gather into one round (each
                # round drains the consumers they concern; under load every commit would start
                # one).
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=RUNNER_LINGER_SECONDS)
                due = waker.take()
            else:
                waker.take()
                due = _EVERYONE  # the poll
    finally:
        _local_wakers.discard(waker)
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await listener
