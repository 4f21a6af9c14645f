"""Migration 0006 on a database that already holds the duplicates the race produced: the newest
open conversation of a contact stays open, the others are closed, then the index holds."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from api.db import make_engine
from api.migrate import upgrade
from tests.conftest import create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.integration


async def _seed(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        for contact_id, value in ((1, "+5511987650001"), (2, "+5511987650002")):
            await connection.execute(
                sa.text(
                    "INSERT INTO contact_points (id, kind, value, created_at) "
                    "VALUES (:id, 'phone', :value, CURRENT_TIMESTAMP)"
                ),
                {"id": contact_id, "value": value},
            )
        # Contact 1: two open WhatsApp conversations (the race) and a closed one; one e-mail.
        # Contact 2: one open WhatsApp conversation.
        for conversation_id, contact_id, channel in (
            (10, 1, "whatsapp"),
            (11, 1, "whatsapp"),
            (12, 1, "whatsapp"),
            (13, 1, "email"),
            (20, 2, "whatsapp"),
        ):
            await connection.execute(
                sa.text(
                    "INSERT INTO conversations "
                    "(id, contact_point_id, channel, address, holder, created_at) "
                    "VALUES (:id, :contact, :channel, 'x', 'bot', CURRENT_TIMESTAMP)"
                ),
                {"id": conversation_id, "contact": contact_id, "channel": channel},
            )
        await connection.execute(
            sa.text("UPDATE conversations SET closed_at = CURRENT_TIMESTAMP WHERE id = 12")
        )
    await engine.dispose()


async def _open_ids(url: str) -> list[int]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text("SELECT id FROM conversations WHERE closed_at IS NULL ORDER BY id")
        )
        ids = [int(row[0]) for row in rows]
    await engine.dispose()
    return ids


async def _open_another(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                sa.text(
                    "INSERT INTO conversations "
                    "(contact_point_id, channel, address, holder, created_at) "
                    "VALUES (2, 'whatsapp', 'x', 'bot', CURRENT_TIMESTAMP)"
                )
            )
    finally:
        await engine.dispose()


def test_duplicates_are_closed_newest_kept_then_the_index_refuses_more(database_url: str) -> None:
    url = create_scratch_database(database_url)
    try:
        upgrade(url, "0005")
        asyncio.run(_seed(url))
        upgrade(url, "0006")
        assert asyncio.run(_open_ids(url)) == [11, 13, 20]
        with pytest.raises(IntegrityError):
            asyncio.run(_open_another(url))
    finally:
        drop_scratch_database(url)
