"""Time the alert sweep (`run_due_alerts`) over a large PostgreSQL database.

    .venv/bin/python scripts/bench_alerts.py                      # scratch database, 100,000 cases
    .venv/bin/python scripts/bench_alerts.py --cases 20000
    .venv/bin/python scripts/bench_alerts.py --database-url postgresql+asyncpg://…/db  # existing

Without --database-url it creates a scratch database on the local PostgreSQL (BENCH_PG_URL,
default postgresql+asyncpg://postgres@127.0.0.1:5432/test as the admin database), migrates it,
fills it with scripts/generate_dataset.py and drops it at the end (--keep keeps it).

At a weekday 10:00 some days after the newest message (silences, handoffs and deadlines have
run out for many subjects) it times:

- the first sweep: every time-based alert kind over every open case and conversation, raising
  what is due (alert rows, timeline entries, events) in one transaction;
- the sweep a minute later: what the worker does every minute once the backlog is raised
  (candidates read, nothing new to raise);
- the same-moment replay: a second sweep for the first moment raises nothing (checked).

Prints one line per step and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _admin_engine(admin_url: str):  # type: ignore[no-untyped-def]
    from api.db import make_engine

    return make_engine(admin_url, isolation_level="AUTOCOMMIT")


def _scratch(admin_url: str) -> str:
    name = f"tratativa_bench_alerts_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        engine = _admin_engine(admin_url)
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop(admin_url: str, url: str) -> None:
    name = make_url(url).database

    async def drop() -> None:
        engine = _admin_engine(admin_url)
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    asyncio.run(drop())


async def _counts(url: str) -> dict[str, object]:
    from api.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as connection:
        cases = await connection.scalar(sa.text("SELECT count(*) FROM cases"))
        open_cases = await connection.scalar(
            sa.text(
                "SELECT count(*) FROM cases WHERE status NOT IN ('ENCERRADO', 'DESCARTADO', 'PAGO')"
            )
        )
        conversations = await connection.scalar(
            sa.text("SELECT count(*) FROM conversations WHERE closed_at IS NULL")
        )
        newest = await connection.scalar(sa.text("SELECT max(created_at) FROM messages"))
    await engine.dispose()
    return {
        "cases": int(cases or 0),
        "open": int(open_cases or 0),
        "conversations": int(conversations or 0),
        "newest": newest,
    }


async def _sweep(url: str, now: dt.datetime) -> tuple[float, int, dict[str, int]]:
    """One sweep in its own transaction: (seconds, alerts raised, alerts by kind after)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from api.db import make_engine
    from api.operations.due import run_due_alerts

    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    raised = await run_due_alerts(now, maker=maker)
    elapsed = time.perf_counter() - started
    async with engine.connect() as connection:
        rows = await connection.execute(sa.text("SELECT kind, count(*) FROM alerts GROUP BY kind"))
        by_kind = {str(kind): int(n) for kind, n in rows}
    await engine.dispose()
    return elapsed, raised, by_kind


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="an existing, migrated and filled database")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--days-later",
        type=int,
        default=10,
        help="sweep this many days after the newest message (timers have run out)",
    )
    args = parser.parse_args()
    admin = os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    url = args.database_url
    scratch = url is None
    if scratch:
        url = _scratch(admin)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-that-is-long-enough-for-hs256")
    os.environ.setdefault("TRATATIVA_ENV", "development")
    try:
        if scratch:
            from api.migrate import upgrade

            upgrade(url)
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    str(ROOT / "scripts" / "generate_dataset.py"),
                    "--database-url",
                    url,
                    "--cases",
                    str(args.cases),
                ],
                check=True,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
            )
            print(
                f"bench-alerts: dataset of {args.cases} cases in "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
            subprocess.run(
                [
                    "psql",
                    make_url(url).set(drivername="postgresql").render_as_string(False),
                    "-qc",
                    "VACUUM ANALYZE",
                ],
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        counts = asyncio.run(_counts(url))
        newest = counts["newest"] or dt.datetime.now(dt.UTC)
        assert isinstance(newest, dt.datetime)
        if newest.tzinfo is None:
            newest = newest.replace(tzinfo=dt.UTC)
        # A weekday at 10:00 in São Paulo, days after the newest message.
        moment = (newest + dt.timedelta(days=args.days_later)).astimezone(
            dt.timezone(dt.timedelta(hours=-3))
        )
        while moment.weekday() >= 5:
            moment += dt.timedelta(days=1)
        moment = moment.replace(hour=10, minute=0, second=0, microsecond=0)
        print(
            f"bench-alerts: {counts['cases']} cases ({counts['open']} open), "
            f"{counts['conversations']} open conversations, swept at {moment.isoformat()}",
            flush=True,
        )
        first, raised, by_kind = asyncio.run(_sweep(url, moment))
        print(
            f"bench-alerts: first sweep (raising the backlog): {first:.2f} s, {raised} alerts "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(by_kind.items()))})",
            flush=True,
        )
        replay, again_raised, _ = asyncio.run(_sweep(url, moment))
        assert again_raised == 0, f"a second sweep for the same moment raised {again_raised}"
        print(f"bench-alerts: same-moment replay: {replay:.2f} s, 0 alerts raised", flush=True)
        steady, steady_raised, _ = asyncio.run(_sweep(url, moment + dt.timedelta(minutes=1)))
        print(
            f"bench-alerts: sweep a minute later: {steady:.2f} s, {steady_raised} new alerts",
            flush=True,
        )
        print(
            f"bench-alerts summary: {counts['open']} open cases, sweep {steady:.2f} s per minute "
            f"(first sweep {first:.2f} s raising {raised} alerts)"
        )
    finally:
        if scratch and not args.keep:
            _drop(admin, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
