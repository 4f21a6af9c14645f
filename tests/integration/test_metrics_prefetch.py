"""The metrics consumer reads a batch's rollup rows at once (api.metrics.consumer.prefetch_batch):
one statement per table for the whole batch, and the very rollups the fold makes one event at a
time. The same fixture as the figures (tests/helpers/metrics_fixture.py), in two databases of
its own, on PostgreSQL and on SQLite."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.db import make_engine
from api.events.consumers import drain
from api.metrics.consumer import METRICS_ROLLUPS
from api.metrics.service import get_metrics
from api.migrate import upgrade
from tests.conftest import _default_url, create_scratch_database, drop_scratch_database
from tests.helpers.metrics_fixture import seed_metrics_fixture
from tests.helpers.queries import count_queries

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

ROLLUP_TABLES = ("metric_cases", "metric_conversations", "metric_case_channels", "metric_outbound")


@pytest.fixture
def urls() -> Iterator[list[str]]:
    """Two databases of their own: the figures count everything, so no other test's events."""
    made = [
        create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
        for _ in range(2)
    ]
    for url in made:
        upgrade(url)
    yield made
    for url in made:
        drop_scratch_database(url)


@pytest.fixture
async def engines(urls: list[str]) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    made = []
    for url in urls:
        engine = make_engine(url)
        async with async_sessionmaker(engine, expire_on_commit=False)() as session:
            await seed_metrics_fixture(session)
            await session.commit()
        made.append(engine)
    yield made[0], made[1]
    for engine in made:
        await engine.dispose()


def reads_of(statements: list[str], table: str) -> int:
    return sum(1 for s in statements if s.startswith("SELECT") and f"FROM {table} " in f"{s} ")


async def test_a_batch_reads_each_rollup_table_once_and_folds_the_same(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    batched, one_by_one = engines
    with count_queries() as log:
        handled = await drain(
            METRICS_ROLLUPS, maker=async_sessionmaker(batched, expire_on_commit=False)
        )
    assert handled >= 150  # one batch of 500 holds them all
    for table in ROLLUP_TABLES:
        assert reads_of(log.statements, table) <= 1, (table, log)
    # The same events folded one per pass: no prefetch (a single event reads its own rows).
    single = dataclasses.replace(METRICS_ROLLUPS, batch_size=1)
    with count_queries() as log:
        assert (
            await drain(single, maker=async_sessionmaker(one_by_one, expire_on_commit=False))
            == handled
        )
    assert reads_of(log.statements, "metric_conversations") > 1
    async with AsyncSession(batched) as a, AsyncSession(one_by_one) as b:
        assert await get_metrics(a, period="2026-10") == await get_metrics(b, period="2026-10")
