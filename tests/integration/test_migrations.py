import asyncio

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from api.db import Base, make_engine
from api.migrate import alembic_config, downgrade, upgrade
from tests.conftest import create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.integration


async def _tables_and_diff(url: str) -> tuple[set[str], list[object]]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        tables = set(await connection.run_sync(lambda c: sa.inspect(c).get_table_names()))
        diff = await connection.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata)
        )
    await engine.dispose()
    return tables, diff


def test_migrations_run_from_empty_to_head_and_back(backend: str, database_url: str) -> None:
    url = create_scratch_database(database_url)
    try:
        upgrade(url)
        tables, diff = asyncio.run(_tables_and_diff(url))
        assert {"cases", "timeline_entries", "messages", "outbox", "analysts"} <= tables
        assert diff == [], "models and migrations disagree"
        downgrade(url)
        tables, _ = asyncio.run(_tables_and_diff(url))
        assert tables <= {"alembic_version"}
        upgrade(url)
        command.check(alembic_config(url))
    finally:
        drop_scratch_database(url)
