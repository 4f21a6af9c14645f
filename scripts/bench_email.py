"""E-mail ingestion benchmark: N mails appended to a throwaway Dovecot, then read twice in the same
run — by a bare aioimaplib FETCH (the ceiling the IMAP transport allows) and by our pipeline
(fetch, parse, classify, match, store the raw and the attachments; an initial sync goes in
batches of EMAIL_SYNC_BATCH mails per transaction, parsed in EMAIL_PARSE_WORKERS processes).

    .venv/bin/python scripts/bench_email.py [--mails 1000] [--database-url URL]

Besides the wall-clock rate it prints the CPU time per mail of each process taking part (this
process, the parse workers, the PostgreSQL backends): on a shared machine the wall clock says
how busy the neighbours were, the CPU time what the pipeline costs.

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


def _machine_busy_seconds() -> float:
    """CPU time every core of this machine spent busy so far (/proc/stat; 0 elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process on this machine (0 when it is gone or not readable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _backend_pids(url: str) -> list[int]:
    if not url.startswith("postgresql"):
        return []
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from api.db import unit_of_work

    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :name"),
            {"name": make_url(url).database},
        )
        return [int(pid) for pid in rows.all()]


async def _pipeline(account: object, url: str) -> tuple[int, int, float, dict[str, float]]:
    from api.channels.email import prepare
    from api.channels.email.imap import ImapAccount, ingest_once

    assert isinstance(account, ImapAccount)
    # The parse workers start once per process (each imports the application, ~3 s of CPU):
    # started here, before the clock, as a long-running worker has them already.
    started = time.perf_counter()
    workers = prepare.parse_workers()
    if workers:
        await prepare.prepare_batch([b"Subject: warm-up\r\n\r\n."] * prepare.CHUNK * workers)
    # A worker that got no warm-up chunk may still be importing: wait until their CPU is still.
    pool = prepare._pool
    pids = list(getattr(pool, "_processes", None) or {}) if pool is not None else []
    spent = [-1.0, sum(_cpu_seconds(pid) for pid in pids)]
    while pids and spent[-1] != spent[-2]:
        await asyncio.sleep(0.3)
        spent.append(sum(_cpu_seconds(pid) for pid in pids))
    # So are the event consumers (the first commit that emits events imports them, ~0.3 s).
    from api.events.consumers import get_consumers

    get_consumers()
    warm_up = time.perf_counter() - started
    before = {pid: _cpu_seconds(pid) for pid in await _backend_pids(url)}
    pool = prepare._pool
    warm_cpu = {
        pid: _cpu_seconds(pid)
        for pid in (list(getattr(pool, "_processes", None) or {}) if pool is not None else [])
    }
    own = time.process_time()
    machine = _machine_busy_seconds()
    started = time.perf_counter()
    stats = await ingest_once(account)
    elapsed = time.perf_counter() - started
    machine = _machine_busy_seconds() - machine
    cpu = {"service": time.process_time() - own}
    pool = prepare._pool
    pids = list(getattr(pool, "_processes", None) or {}) if pool is not None else []
    cpu["parse workers"] = sum(_cpu_seconds(pid) for pid in pids) - sum(warm_cpu.values())
    cpu["postgresql"] = sum(
        _cpu_seconds(pid) - before.get(pid, 0.0) for pid in await _backend_pids(url)
    )
    # What the rest of the machine (a neighbour's benchmark, the IMAP server) took meanwhile:
    # the wall-clock rate means little when it was large.
    cpu["others s"] = max(0.0, machine - sum(cpu.values()))
    cpu["warm-up s"] = warm_up
    return stats.fetched, stats.stored, elapsed, cpu


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
    from api.channels.email.prepare import parse_workers
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

            async def run() -> tuple[tuple[int, float], tuple[int, int, float, dict[str, float]]]:
                bare = await _bare_fetch(account, FETCH_BATCH)
                ours = await _pipeline(account, url)
                from api.db import get_engine

                await get_engine().dispose()
                return bare, ours

            (bare_n, bare_s), (ours_n, stored, ours_s, cpu) = asyncio.run(run())
    finally:
        drop_scratch_database(url)

    warm_up = cpu.pop("warm-up s")
    others = cpu.pop("others s")
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
        f"  ({stored} stored in {ours_s:.2f} s; batches of {get_settings().email_sync_batch},"
        f" {parse_workers()} parse workers, started in {warm_up:.1f} s before the clock)"
    )
    total = sum(cpu.values())
    parts = ", ".join(f"{name} {1000 * seconds / ours_n:.2f}" for name, seconds in cpu.items())
    print(f"  CPU per mail (ms)                 {1000 * total / ours_n:8.2f}  ({parts})")
    print(
        f"  load average at the end           {os.getloadavg()[0]:8.2f}"
        f"  ({os.cpu_count()} cores; CPU-bound ceiling here"
        f" ~{(os.cpu_count() or 1) * ours_n / total:.0f} mails/s)"
    )
    print(
        f"  CPU of other processes meanwhile  {others:8.2f} s"
        f"  ({100 * others / ((os.cpu_count() or 1) * ours_s):.0f} % of the machine;"
        " the rate above is only comparable between runs where this is small)"
    )
    if stored != args.mails or bare_n != args.mails:
        print("ERROR: not every mail was fetched and stored", file=sys.stderr)
        return 1
    print(f"email-summary: mail_per_s={ours_n / ours_s:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
