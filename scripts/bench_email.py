"""E-mail ingestion benchmark: N mails appended to a throwaway Dovecot, then read twice in the same
run — by a bare aioimaplib FETCH (the ceiling the IMAP transport allows) and by our pipeline
(fetch, parse, classify, match, store the raw and the attachments, one transaction per mail).

    .venv/bin/python scripts/bench_email.py [--mails 1000] [--database-url URL]

Without --database-url (or BENCH_DATABASE_URL) a scratch SQLite file is used; with a PostgreSQL
URL a scratch database is created next to it and dropped afterwards. Dovecot is started (and, as
root, installed) the way the test suite does it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _corpus_mails(count: int) -> list[bytes]:
    from tests.integration.email_servers import corpus, load_eml, personalize

    shapes = [load_eml(name) for name in corpus()]
    return [personalize(shapes[i % len(shapes)], f"bench{i}") for i in range(count)]


async def _bare_fetch(account: object, batch: int) -> tuple[int, float]:
    """UID FETCH of every body with aioimaplib, in the pipeline's batch size; no processing."""
    from api.channels.email.imap import ImapAccount, ImapMailbox

    assert isinstance(account, ImapAccount)
    mailbox = ImapMailbox(account)
    started = time.perf_counter()
    await mailbox.connect()
    try:
        await mailbox.select(account.folder)
        uids = await mailbox.uids_after(0)
        fetched = 0
        for start in range(0, len(uids), batch):
            fetched += len(await mailbox.fetch(uids[start : start + batch]))
    finally:
        await mailbox.close()
    return fetched, time.perf_counter() - started


async def _pipeline(account: object) -> tuple[int, int, float]:
    from api.channels.email.imap import ImapAccount, ingest_once

    assert isinstance(account, ImapAccount)
    started = time.perf_counter()
    stats = await ingest_once(account)
    return stats.fetched, stats.stored, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tratativa-bench-email-"))
    base_url = args.database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
    from tests.conftest import create_scratch_database, drop_scratch_database

    url = create_scratch_database(base_url)
    os.environ["DATABASE_URL"] = url
    os.environ["STORAGE_DIR"] = str(work / "storage")
    from api.channels.email.imap import FETCH_BATCH
    from api.config import get_settings
    from api.migrate import upgrade
    from tests.integration.email_servers import run_dovecot

    get_settings.cache_clear()
    upgrade(url)
    mails = _corpus_mails(args.mails)
    try:
        with run_dovecot() as server:
            folder = "Bench"
            server.create_folder(folder)
            started = time.perf_counter()
            server.append(folder, mails)
            append_seconds = time.perf_counter() - started
            account = server.account(folder)

            async def run() -> tuple[tuple[int, float], tuple[int, int, float]]:
                bare = await _bare_fetch(account, FETCH_BATCH)
                ours = await _pipeline(account)
                from api.db import get_engine

                await get_engine().dispose()
                return bare, ours

            (bare_n, bare_s), (ours_n, stored, ours_s) = asyncio.run(run())
    finally:
        drop_scratch_database(url)

    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    size = sum(len(m) for m in mails) / len(mails)
    print(f"e-mail ingestion, {args.mails} mails (avg {size:.0f} bytes, {backend})")
    print(f"  IMAP APPEND (imaplib, setup)      {args.mails / append_seconds:8.1f} mails/s")
    print(
        f"  bare aioimaplib FETCH (batch {FETCH_BATCH})   {bare_n / bare_s:8.1f} mails/s"
        f"  ({bare_n} in {bare_s:.2f} s)"
    )
    print(
        f"  Tratativa pipeline                {ours_n / ours_s:8.1f} mails/s"
        f"  ({stored} stored in {ours_s:.2f} s)"
    )
    if stored != args.mails or bare_n != args.mails:
        print("ERROR: not every mail was fetched and stored", file=sys.stderr)
        return 1
    print(f"email-summary: mail_per_s={ours_n / ours_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
