"""Migration 0015 on a database that already read mail by IMAP: each (account, folder) becomes one
imap mailbox at its newest generation's cursor, with the password's variable name, no secret."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
import sqlalchemy as sa

from api.db import UTCDateTime, make_engine
from api.migrate import downgrade, upgrade
from tests.conftest import create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.integration


async def _seed(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        for account, folder, uidvalidity, last_uid, when in (
            ("ana@firma.example@imap.firma.example:993", "INBOX", 111, 40, dt.datetime(2026, 1, 1)),
            ("ana@firma.example@imap.firma.example:993", "INBOX", 222, 7, dt.datetime(2026, 2, 1)),
            ("ana@firma.example@imap.firma.example:993", "Juridico", 5, 3, dt.datetime(2026, 2, 1)),
        ):
            await connection.execute(
                sa.text(
                    "INSERT INTO email_imap_cursors "
                    "(account, folder, uidvalidity, last_uid, updated_at, created_at) "
                    "VALUES (:a, :f, :v, :u, :w, :w)"
                ).bindparams(sa.bindparam("w", type_=UTCDateTime())),
                {
                    "a": account,
                    "f": folder,
                    "v": uidvalidity,
                    "u": last_uid,
                    "w": when.replace(tzinfo=dt.UTC),
                },
            )
    await engine.dispose()


async def _mailboxes(url: str) -> list[dict[str, Any]]:
    engine = make_engine(url)
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT name, provider, address, config, credentials_env, cursor, state, "
                "token_sealed FROM mailboxes ORDER BY name"
            )
        )
        found = [dict(row._mapping) for row in rows]
    await engine.dispose()
    return found


def test_imap_cursors_become_imap_mailboxes(database_url: str) -> None:
    url = create_scratch_database(database_url)
    try:
        upgrade(url, "0014")
        asyncio.run(_seed(url))
        upgrade(url, "0015")
        rows = asyncio.run(_mailboxes(url))
        for row in rows:
            for key in ("config", "credentials_env"):
                if isinstance(row[key], str):  # SQLite hands JSON back as text
                    row[key] = json.loads(row[key])
        assert [(r["name"], r["cursor"], r["config"]["folder"]) for r in rows] == [
            ("imap", "222:7", "INBOX"),
            ("imap-2", "5:3", "Juridico"),
        ]
        first = rows[0]
        assert (first["provider"], first["address"], first["state"]) == (
            "imap",
            "ana@firma.example",
            "active",
        )
        assert first["config"]["host"] == "imap.firma.example" and first["config"]["port"] == 993
        assert first["credentials_env"] == {"password": "IMAP_PASSWORD"}
        assert first["token_sealed"] is None
        downgrade(url, "0014")
        upgrade(url, "0015")
    finally:
        drop_scratch_database(url)
