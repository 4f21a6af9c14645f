"""Time one evaluation pass of the automation rules over a large PostgreSQL database.

    .venv/bin/python scripts/bench_rules.py                      # scratch database, 100,000 cases
    .venv/bin/python scripts/bench_rules.py --database-url postgresql+asyncpg://…/db  # existing

Without --database-url it creates a scratch database on the local PostgreSQL
(BENCH_PG_URL, default postgresql+asyncpg://postgres@127.0.0.1:5432/test as the admin database),
migrates it, fills it with scripts/generate_dataset.py and drops it at the end (--keep keeps it).
Then, with the shipped default rules enabled, at a moment when timers have run out for many
subjects (days after the newest message), it times:

- the evaluation pass: every time rule over every open case (what the worker's minute reads:
  candidates in SQL, business-calendar due times, ledger, conditions), firing nothing;
- firing: each time rule on its first --sample due subjects (messages into the outbox through
  the templates and composers, status moves, alerts, ledger rows, timeline, events);
- the steady minute: with a ledger row for every subject still due (as if earlier minutes had
  fired them), `run_due_rules` a minute later — what the worker reads every minute.

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


def _scratch(admin_url: str) -> str:
    from api.db import make_engine

    name = f"tratativa_bench_rules_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        await engine.dispose()

    asyncio.run(create())
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop(admin_url: str, url: str) -> None:
    from api.db import make_engine

    name = make_url(url).database

    async def drop() -> None:
        engine = make_engine(admin_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await engine.dispose()

    asyncio.run(drop())


async def _counts(url: str) -> dict[str, int]:
    from api.cases.lifecycle import OPEN_STATUSES
    from api.db import make_engine

    engine = make_engine(url)
    async with engine.connect() as connection:
        cases = await connection.scalar(sa.text("SELECT count(*) FROM cases"))
        open_cases = await connection.scalar(
            sa.text("SELECT count(*) FROM cases WHERE status = ANY(:s)"),
            {"s": [str(s) for s in OPEN_STATUSES]},
        )
        rules = await connection.scalar(
            sa.text("SELECT count(*) FROM automation_rules WHERE enabled")
        )
        newest = await connection.scalar(sa.text("SELECT max(created_at) FROM messages"))
    await engine.dispose()
    return {
        "cases": int(cases or 0),
        "open": int(open_cases or 0),
        "rules": int(rules or 0),
        "newest": newest,
    }


async def _evaluate(url: str, now: dt.datetime) -> tuple[float, dict[str, int]]:
    """One evaluation pass of every time rule over the whole database, firing nothing."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from api.automations.due import evaluate_due_rules
    from api.db import make_engine

    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    due = await evaluate_due_rules(now, maker=maker)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, due


async def _consumers_caught_up(url: str) -> None:
    """Every event consumer's cursor at the stream's head, as a worker that keeps up leaves it.
    The dataset and the metrics bench write their events straight into the table: left as a
    backlog, the first commit of the firing below makes the inline consumers drain all of it
    in this process, inside the timing (3.5 s per firing after the metrics bench's 347,111
    events, against about 50 ms)."""
    from api.db import make_engine, utcnow
    from api.events.consumers import get_consumers

    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            head = (
                await connection.execute(
                    sa.text("SELECT tx_id, id FROM events ORDER BY tx_id DESC, id DESC LIMIT 1")
                )
            ).first()
            if head is None:
                return
            for consumer in get_consumers():
                await connection.execute(
                    sa.text(
                        "INSERT INTO event_consumers (name, last_tx_id, last_event_id, updated_at)"
                        " VALUES (:name, :tx_id, :event_id, :now) ON CONFLICT (name) DO UPDATE"
                        " SET last_tx_id = :tx_id, last_event_id = :event_id, updated_at = :now"
                    ),
                    {"name": consumer.name, "tx_id": head[0], "event_id": head[1], "now": utcnow()},
                )
    finally:
        await engine.dispose()


async def _fire_sample(url: str, now: dt.datetime, sample: int) -> tuple[float, int, int]:
    """Fire each time rule on its first `sample` due subjects: (seconds, firings, actions)."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from api.automations.due import sweep_rule_page
    from api.automations.engine import get_enabled_rules
    from api.db import make_engine, unit_of_work
    from api.operations.calendar import load_calendar

    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with unit_of_work(maker) as session:
        rules = await get_enabled_rules(session, trigger_type="time")
        calendar = await load_calendar(session)
        before = await session.scalar(sa.text("SELECT count(*) FROM automation_executions"))
    started = time.perf_counter()
    actions = 0
    for rule in rules:
        async with unit_of_work(maker) as session:
            taken, _ = await sweep_rule_page(
                session, rule=rule, now=now, calendar=calendar, limit=sample
            )
        actions += taken
    elapsed = time.perf_counter() - started
    async with unit_of_work(maker) as session:
        after = await session.scalar(sa.text("SELECT count(*) FROM automation_executions"))
    await engine.dispose()
    return elapsed, int(after or 0) - int(before or 0), actions


async def _mark_handled(url: str, now: dt.datetime) -> int:
    """Write a ledger row for every subject still due (as if earlier minutes had fired them):
    what the worker's minute reads in its steady state. Returns how many."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from api.automations.engine import get_enabled_rules
    from api.automations.models import AutomationExecution
    from api.automations.schemas import TimeTrigger
    from api.automations.subjects import find_candidates
    from api.db import make_engine, unit_of_work, utcnow
    from api.operations.calendar import load_calendar

    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    async with unit_of_work(maker) as session:
        rules = await get_enabled_rules(session, trigger_type="time")
        calendar = await load_calendar(session)
    marked = 0
    for rule in rules:
        assert isinstance(rule.spec.trigger, TimeTrigger)
        after: int | None = 0
        while after is not None:
            async with unit_of_work(maker) as session:
                found, after = await find_candidates(
                    session,
                    trigger=rule.spec.trigger,
                    conditions=rule.spec.conditions,
                    calendar=calendar,
                    now=now,
                    after_id=after,
                    rule_id=rule.id,
                )
                rows = [
                    {
                        "rule_id": rule.id,
                        "rule_version": rule.row.version,
                        "subject": c.subject,
                        "trigger_key": c.trigger_key,
                        "case_id": c.case_id,
                        "conversation_id": c.conversation_id,
                        "depth": 0,
                        "state": "done",
                        "sends": 0,
                        "summary": "bench: handled earlier",
                        "detail": {},
                        "created_at": utcnow(),
                    }
                    for c in found
                ]
                if rows:
                    await session.execute(sa.insert(AutomationExecution), rows)
                marked += len(rows)
    # Autovacuum would analyze the grown ledger; do it now rather than wait for it.
    async with unit_of_work(maker) as session:
        await session.execute(sa.text("ANALYZE automation_executions"))
    await engine.dispose()
    return marked


async def _steady(url: str, now: dt.datetime) -> tuple[float, int]:
    """The worker's minute: run_due_rules(now) for real, over a ledger that holds what was due."""
    from sqlalchemy.ext.asyncio import async_sessionmaker

    from api.automations.due import run_due_rules
    from api.db import make_engine

    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    taken = await run_due_rules(now, maker=maker)
    elapsed = time.perf_counter() - started
    await engine.dispose()
    return elapsed, taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="an existing, migrated and filled database")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--sample", type=int, default=200, help="subjects each time rule fires on (timed)"
    )
    parser.add_argument(
        "--days-later",
        type=int,
        default=10,
        help="evaluate this many days after the newest message (timers have run out)",
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
                f"bench-rules: dataset of {args.cases} cases in {time.perf_counter() - started:.0f} s"
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
        import api.channels  # noqa: F401  (registers the composers the actions send through)

        counts = asyncio.run(_counts(url))
        newest = counts["newest"] or dt.datetime.now(dt.UTC)
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
            f"bench-rules: {counts['cases']} cases ({counts['open']} open), "
            f"{counts['rules']} enabled rules, evaluated at {moment.isoformat()}"
        )
        elapsed, due = asyncio.run(_evaluate(url, moment))
        print(
            f"bench-rules: evaluation pass over {counts['open']} open cases: {elapsed:.2f} s "
            f"({', '.join(f'{name}: {n} due' for name, n in due.items())})"
        )
        asyncio.run(_consumers_caught_up(url))
        fired_s, firings, actions = asyncio.run(_fire_sample(url, moment, args.sample))
        per = fired_s / firings * 1000 if firings else 0.0
        print(
            f"bench-rules: firing {firings} subjects ({actions} actions: outbox messages, status "
            f"moves, alerts, ledger): {fired_s:.2f} s, {per:.0f} ms per firing"
        )
        marked = asyncio.run(_mark_handled(url, moment))
        steady, taken = asyncio.run(_steady(url, moment + dt.timedelta(minutes=1)))
        print(
            f"bench-rules: steady minute (run_due_rules a minute later, {marked} due subjects "
            f"already in the ledger): {steady:.2f} s, {taken} actions"
        )
        print(
            f"bench-rules summary: {counts['open']} open cases; evaluation with everything due "
            f"{elapsed:.2f} s; steady minute {steady:.2f} s; {per:.0f} ms per firing"
        )
    finally:
        if scratch and not args.keep:
            _drop(admin, url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
