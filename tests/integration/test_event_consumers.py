"""Durable consumers: a consumer killed mid-batch (SIGKILL of a real process) or failing between
its effect and its commit loses nothing and handles nothing twice; on PostgreSQL an event whose
id was taken before another's but committed after it is not skipped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.db import make_engine, unit_of_work
from api.events import emit
from api.events import kinds as ev
from api.events.consumers import Consumer, drain, get_cursor, run_consumer_once
from api.events.service import EventRecord
from tests.helpers.crash_consumer import EFFECTS_DDL, effect_consumer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
ROOT = Path(__file__).resolve().parents[2]


def alert(run: str, n: int) -> ev.AlertRaised:
    return ev.AlertRaised(actor_kind=ev.EventActorKind.RULE, alert=run, detail={"n": n})


async def emit_alerts(run: str, count: int) -> list[int]:
    """`count` alert.raised events, one transaction each; their ids."""
    from api.events.models import StoredEvent

    for n in range(count):
        async with unit_of_work() as session:
            emit(session, alert(run, n))
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(StoredEvent.id)
            .where(StoredEvent.kind == "alert.raised")
            .order_by(StoredEvent.id)
        )
        return [i for i in rows if i is not None][-count:]


async def effects(name: str) -> Counter[int]:
    async with unit_of_work() as session:
        rows = await session.execute(
            sa.text("SELECT event_id FROM consumer_effects WHERE consumer = :c"), {"c": name}
        )
        return Counter(int(r[0]) for r in rows)


@pytest.fixture
async def effects_table() -> None:
    async with unit_of_work() as session:
        await session.execute(sa.text(EFFECTS_DDL))


async def start_at_head(name: str) -> None:
    """Create the consumer's cursor at the end of the stream (history is not this test's)."""
    consumer = Consumer(name=name, handle=_never, start_at_head=True, kinds=frozenset({"none"}))
    await run_consumer_once(consumer)


async def _never(_session: AsyncSession, _record: EventRecord) -> None:
    raise AssertionError("no event expected")


async def drain_until(consumer: Consumer, expected: int, timeout: float = 30.0) -> None:
    """Drain; a killed PostgreSQL backend may hold the cursor lock for a moment (the consumer
    skips a locked cursor), so retry until `expected` effects exist or the timeout."""
    deadline = time.monotonic() + timeout
    while sum((await effects(consumer.name)).values()) < expected:
        assert time.monotonic() < deadline, "the restarted consumer did not catch up"
        await drain(consumer)


def start_consumer_process(
    database_url: str, name: str, *, freeze_after: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.helpers.crash_consumer",
            database_url,
            name,
            f"{freeze_after}",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


@pytest.mark.usefixtures("effects_table")
async def test_a_consumer_killed_mid_batch_loses_nothing_and_repeats_nothing(
    database_url: str,
) -> None:
    name = f"crash-{uuid.uuid4().hex[:8]}"
    await start_at_head(name)
    ids = await emit_alerts(name, 12)
    # Batches of 5: the first commits, the second is frozen after its 2nd event, then killed.
    child = start_consumer_process(database_url, name, freeze_after=7)
    assert child.stdout is not None
    seen = [child.stdout.readline().strip() for _ in range(7)]
    assert seen == [f"handled {i}" for i in ids[:7]]
    os.killpg(child.pid, signal.SIGKILL)
    child.wait(timeout=10)

    # The committed batch is kept, the half-done one left no trace.
    assert await effects(name) == Counter(ids[:5])
    async with unit_of_work() as session:
        cursor = await get_cursor(session, name)
    assert cursor is not None and cursor[1] == ids[4]

    await drain_until(effect_consumer(name), expected=12)
    assert await effects(name) == Counter(ids)  # every event exactly once
    async with unit_of_work() as session:
        cursor = await get_cursor(session, name)
    assert cursor is not None and cursor[1] == ids[-1]


@pytest.mark.usefixtures("effects_table")
async def test_a_failure_between_effect_and_commit_rolls_both_back() -> None:
    name = f"fail-{uuid.uuid4().hex[:8]}"
    await start_at_head(name)
    ids = await emit_alerts(name, 6)
    fail_on = ids[3]

    def explode(record: EventRecord) -> None:
        if record.id == fail_on:
            raise RuntimeError("injected after the effect was written")

    with pytest.raises(RuntimeError, match="injected"):
        await drain(effect_consumer(name, on_handled=explode, batch_size=4))
    assert await effects(name) == Counter()  # the batch's effects went with its rollback
    async with unit_of_work() as session:
        assert (await get_cursor(session, name)) == (await _head_before(session, ids[0]))

    await drain(effect_consumer(name, batch_size=4))
    assert await effects(name) == Counter(ids)


async def _head_before(session: AsyncSession, first_id: int) -> tuple[int, int] | None:
    """The position a head-started cursor had: the event just before `first_id`."""
    from api.events.models import StoredEvent

    row = (
        await session.execute(
            sa.select(StoredEvent.tx_id, StoredEvent.id)
            .where(StoredEvent.id < first_id)
            .order_by(StoredEvent.tx_id.desc(), StoredEvent.id.desc())
            .limit(1)
        )
    ).first()
    return (int(row[0]), int(row[1])) if row else (0, 0)


@pytest.mark.usefixtures("effects_table")
async def test_an_event_committed_after_a_later_id_is_not_skipped(
    backend: str, engine: AsyncEngine
) -> None:
    """T1 takes its transaction id first, T2 second; T2 emits (id a) before T1 emits (id b > a)
    and commits first... and the reverse. Reading by id alone would move past the event still
    in flight and never see it; the (tx_id, id) order below the oldest running transaction
    hands both over, each once."""
    if backend != "postgresql":
        pytest.skip("SQLite serialises writing transactions: ids follow commit order")
    name = f"gap-{uuid.uuid4().hex[:8]}"
    await start_at_head(name)
    consumer = effect_consumer(name)
    maker = async_sessionmaker(engine, expire_on_commit=False)

    # 1) A lower id still in flight while a higher id commits.
    slow = maker()
    await slow.execute(sa.text("SELECT pg_current_xact_id()"))  # T1 has an xid from now on
    emit(slow, alert(name, 1))
    await slow.flush()  # id a taken, not committed
    async with unit_of_work() as session:
        emit(session, alert(name, 2))  # id b > a, committed first
    assert await drain(consumer) == 0  # b waits: T1 (older) is still running
    await slow.commit()
    await slow.close()
    assert await drain(consumer) == 2

    # 2) An older transaction (smaller xid) that emits a higher id and commits first.
    old = maker()
    await old.execute(sa.text("SELECT pg_current_xact_id()"))  # older xid
    young = maker()
    await young.execute(sa.text("SELECT pg_current_xact_id()"))  # younger xid
    emit(young, alert(name, 3))
    await young.flush()  # lower id, younger transaction, still running
    emit(old, alert(name, 4))
    await old.commit()  # higher id, older transaction, committed
    await old.close()
    assert await drain(consumer) == 1  # the older transaction's event is final: handled
    await young.commit()
    await young.close()
    assert await drain(consumer) == 1  # the lower id is not skipped

    handled = await effects(name)
    assert sorted(handled.values()) == [1, 1, 1, 1]


@pytest.mark.usefixtures("effects_table")
async def test_a_long_transaction_in_another_database_holds_no_consumer_back(
    backend: str, database_url: str
) -> None:
    """Transaction ids are cluster-wide: the oldest running transaction may belong to another
    database (another app, a migration, a report) and can never write our events."""
    if backend != "postgresql":
        pytest.skip("PostgreSQL transaction ids only")
    from tests.conftest import _admin_url

    name = f"elsewhere-{uuid.uuid4().hex[:8]}"
    await start_at_head(name)
    other = make_engine(_admin_url(database_url))
    try:
        async with other.connect() as connection:
            await connection.execute(sa.text("SELECT pg_current_xact_id()"))  # open, with an xid
            await emit_alerts(name, 2)
            assert await drain(effect_consumer(name)) == 2
            await connection.rollback()
    finally:
        await other.dispose()
    assert sorted((await effects(name)).values()) == [1, 1]


@pytest.mark.usefixtures("effects_table")
async def test_the_runner_wakes_on_a_commit_instead_of_waiting_for_its_poll() -> None:
    import asyncio

    from api.events.consumers import run_event_consumers

    name = f"runner-{uuid.uuid4().hex[:8]}"
    await start_at_head(name)
    first, second = asyncio.Event(), asyncio.Event()
    consumer = effect_consumer(
        name, on_handled=lambda _record: second.set() if first.is_set() else first.set()
    )
    stop = asyncio.Event()
    await emit_alerts(name, 1)
    runner = asyncio.create_task(run_event_consumers(stop, poll_seconds=600, consumers=[consumer]))
    try:
        await asyncio.wait_for(first.wait(), timeout=10)  # the runner's first round
        await emit_alerts(name, 1)
        await asyncio.wait_for(second.wait(), timeout=10)  # woken by the commit, not the poll
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)
    assert sum((await effects(name)).values()) == 2
