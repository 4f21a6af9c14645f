"""Benchmark the metrics dashboard's queries on PostgreSQL at scale (issue 13).

    .venv/bin/python scripts/bench_metrics.py                      # scratch DB, 100,000 cases
    .venv/bin/python scripts/bench_metrics.py --database-url postgresql://…/db --skip-generate

With no --database-url it creates a scratch database on PGHOST (postgresql://postgres@127.0.0.1),
migrates it, fills it with scripts/generate_dataset.py (N cases, 10N messages), writes the
events those rows stand for (notice, messages received and sent, delivery receipts, handoffs
and claims by ten analysts, agreements, payments — in time order, one INSERT … SELECT), rebuilds
the rollups from the event stream (`tratativa report rebuild`'s code), then times every query the
dashboard runs (one per table: channels, analysts, brands+statuses, handoff reasons, events,
weeks) with the dashboard's default filter (one month) and with a brand, a channel and no period
at all. Prints p50/p95 per query and filter, and one summary line:

    bench_metrics: dashboard queries p95 123 ms (month) / 456 ms (all time), target 300 ms;
    rebuild 2,345,678 events in 98 s
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 300.0

ANALYSTS_SQL = """
INSERT INTO analysts (created_at, email, name, role, password_hash, active)
SELECT now(), 'bench.analyst' || n || '@tratativa.local', 'Analista Bench ' || n, 'analyst',
       'not-a-login', true
FROM generate_series(1, 10) AS n
ON CONFLICT (email) DO NOTHING
"""

# Each row of the generated tables as the event the services would have emitted, in time order
# (the fold reads the stream in order). Analyst messages are the generator's "system" messages
# after a handoff; claims come 5–125 minutes after the handoff.
EVENTS_SQL = """
WITH team AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM analysts WHERE email LIKE 'bench.analyst%'
),
conv AS (
    SELECT v.id, v.case_id, v.channel, v.handoff_at, v.handoff_reason,
           (SELECT ids[1 + v.id % cardinality(ids)] FROM team) AS analyst
    FROM conversations v
),
src AS (
    SELECT c.notice_sent_at AS at, 0 AS rank, 'case.status_changed' AS kind, c.id AS case_id,
           NULL::int AS conversation_id, NULL::varchar AS channel, 'system' AS actor_kind,
           NULL::int AS actor_id,
           jsonb_build_object('from_status', 'APTO_NOTIFICAR', 'to_status', 'NOTIFICADO',
                              'reason', NULL) AS payload
    FROM cases c WHERE c.notice_sent_at IS NOT NULL
    UNION ALL
    SELECT m.created_at, 1, 'message.received', m.case_id, m.conversation_id, m.channel,
           'infringer', NULL,
           jsonb_build_object('message_id', m.id, 'attachments', 0, 'answerable', true)
    FROM messages m WHERE m.direction = 'inbound'
    UNION ALL
    SELECT first_at, 2, 'case.status_changed', case_id, NULL, NULL, 'infringer', NULL,
           jsonb_build_object('from_status', 'NOTIFICADO', 'to_status', 'EM_ATENDIMENTO',
                              'reason', 'o infrator respondeu')
    FROM (SELECT case_id, min(created_at) AS first_at FROM messages
          WHERE direction = 'inbound' AND case_id IS NOT NULL GROUP BY case_id) f
    UNION ALL
    SELECT m.created_at, 3, 'message.sent', m.case_id, m.conversation_id, m.channel,
           CASE WHEN h.human THEN 'analyst' ELSE m.author_kind END,
           CASE WHEN h.human THEN v.analyst END,
           jsonb_build_object('message_id', m.id,
                              'author_kind', CASE WHEN h.human THEN 'analyst'
                                                  ELSE m.author_kind END,
                              'template', NULL)
    FROM messages m JOIN conv v ON v.id = m.conversation_id,
         LATERAL (SELECT (m.author_kind = 'system' AND v.handoff_at IS NOT NULL
                          AND m.created_at > v.handoff_at) AS human) h
    WHERE m.direction = 'outbound'
    UNION ALL
    SELECT m.created_at + interval '20 seconds', 4, 'message.delivered', m.case_id,
           m.conversation_id, m.channel, 'system', NULL,
           jsonb_build_object('message_id', m.id, 'status', m.delivery_status)
    FROM messages m
    WHERE m.direction = 'outbound' AND m.delivery_status IN ('sent', 'delivered', 'read')
    UNION ALL
    SELECT v.handoff_at, 5, 'handoff.requested', v.case_id, v.id, v.channel, 'bot', NULL,
           jsonb_build_object('reason', v.handoff_reason)
    FROM conv v WHERE v.handoff_at IS NOT NULL
    UNION ALL
    SELECT v.handoff_at + make_interval(mins => 5 + v.id % 120), 6, 'handoff.claimed', v.case_id,
           v.id, v.channel, 'analyst', v.analyst,
           jsonb_build_object('analyst_id', v.analyst, 'previous_analyst_id', NULL)
    FROM conv v WHERE v.handoff_at IS NOT NULL
    UNION ALL
    SELECT p.created_at - interval '1 minute', 7, 'agreement.proposed', c.id, NULL, NULL, 'bot',
           NULL, jsonb_build_object('amount', c.agreed_amount::text, 'installments', 3)
    FROM cases c JOIN payment_requests p ON p.case_id = c.id WHERE c.agreed_amount IS NOT NULL
    UNION ALL
    SELECT paid.at, 8, 'payment.confirmed', c.id, NULL, NULL, 'analyst',
           (SELECT ids[1 + c.id % cardinality(ids)] FROM team),
           jsonb_build_object('amount', c.agreed_amount::text)
    FROM cases c
    JOIN (SELECT p.case_id, max(i.paid_at) AS at FROM payment_requests p
          JOIN installments i ON i.payment_request_id = p.id GROUP BY p.case_id) paid
      ON paid.case_id = c.id
    WHERE c.status = 'PAGO' AND paid.at IS NOT NULL
)
INSERT INTO events (kind, case_id, conversation_id, channel, actor_kind, actor_id, occurred_at,
                    recorded_at, payload)
SELECT kind, case_id, conversation_id, channel, actor_kind, actor_id, at, now(), payload
FROM src ORDER BY at, rank
"""


def pg_url(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres+asyncpg://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def sa_url(url: str) -> str:
    return "postgresql+asyncpg://" + pg_url(url).split("://", 1)[1]


async def _admin(url: str, statement: str) -> None:
    base = pg_url(url).rsplit("/", 1)[0]
    conn = await asyncpg.connect(f"{base}/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def derive_events(url: str) -> int:
    conn = await asyncpg.connect(pg_url(url))
    try:
        if await conn.fetchval("SELECT count(*) FROM events WHERE kind = 'message.sent'"):
            return 0
        await conn.execute(ANALYSTS_SQL)
        started = time.perf_counter()
        status = await conn.execute(EVENTS_SQL)
        await conn.execute("ANALYZE events")
        count = int(status.split()[-1])
        print(f"  events written: {count:,} in {time.perf_counter() - started:.0f} s", flush=True)
        return count
    finally:
        await conn.close()


async def rebuild() -> Any:
    from api.db import unit_of_work
    from api.metrics.rebuild import do_rebuild

    async with unit_of_work() as session:
        result = await do_rebuild(session)
    return result


async def time_queries(url: str, runs: int) -> dict[str, dict[str, list[float]]]:
    import sqlalchemy as sa

    from api.db import get_engine, get_sessionmaker
    from api.metrics.models import MetricCase
    from api.metrics.service import TABLES, get_metrics

    conn = await asyncpg.connect(pg_url(url))
    for table in (
        "metric_conversations",
        "metric_cases",
        "metric_case_channels",
        "metric_outbound",
        "metric_intervals",
        "metric_events",
    ):
        await conn.execute(f"ANALYZE {table}")
    await conn.close()
    maker = get_sessionmaker()
    async with maker() as session:
        latest = await session.scalar(sa.select(sa.func.max(MetricCase.cohort_at)))
        brand = await session.scalar(sa.select(sa.func.min(MetricCase.brand_id)))
    assert latest is not None, "no rollups: nothing to measure"
    # The last full month (the dashboard opens on a month).
    first_of_month = latest.replace(day=1)
    previous = (first_of_month - __import__("datetime").timedelta(days=1)).strftime("%Y-%m")
    filters: dict[str, dict[str, Any]] = {
        "month": {"period": previous},
        "month+brand": {"period": previous, "brand_id": brand},
        "month+whatsapp": {"period": previous, "channel": "whatsapp"},
        "all time": {},
    }
    tables = [t for t in TABLES if t != "statuses"]  # brands and statuses are one query pass
    timings: dict[str, dict[str, list[float]]] = {}
    for name, values in filters.items():
        timings[name] = {}
        for table in tables:
            samples: list[float] = []
            for _ in range(runs):
                async with maker() as session:
                    started = time.perf_counter()
                    await get_metrics(session, tables=(table,), **values)
                    samples.append((time.perf_counter() - started) * 1000)
            timings[name][table] = samples
    await get_engine().dispose()
    return timings


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def main_async(args: argparse.Namespace) -> int:
    url = args.database_url
    scratch = None
    if url is None:
        scratch = f"tratativa_bench_metrics_{uuid.uuid4().hex[:8]}"
        base = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
        await _admin(f"{base}/postgres", f'CREATE DATABASE "{scratch}"')
        url = f"{base}/{scratch}"
    os.environ["DATABASE_URL"] = sa_url(url)
    os.environ.setdefault("SECRET_KEY", "bench-metrics-secret-key-long-enough-for-hs256")
    try:
        if not args.skip_generate:
            from api.migrate import upgrade

            await asyncio.to_thread(upgrade, sa_url(url))
            print(f"generating {args.cases:,} cases …", flush=True)
            generator = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "scripts" / "generate_dataset.py"),
                "--database-url", pg_url(url), "--cases", str(args.cases),
            )  # fmt: skip
            if await generator.wait() != 0:
                raise SystemExit("generate_dataset.py failed")
        await derive_events(url)
        rebuilt = ""
        if not args.skip_rebuild:
            print("rebuilding the rollups from the events …", flush=True)
            result = await rebuild()
            rows = ", ".join(f"{k}={v:,}" for k, v in result.rows.items())
            print(f"  rebuild: {result.events:,} events in {result.seconds:.1f} s ({rows})")
            rebuilt = f"; rebuild {result.events:,} events in {result.seconds:.0f} s"
        timings = await time_queries(url, args.runs)
        print(f"\n{'filter':<16}{'query':<18}{'p50 ms':>9}{'p95 ms':>9}")
        worst: dict[str, float] = {}
        for name, per_table in timings.items():
            for table, samples in per_table.items():
                high = p95(samples)
                worst[name] = max(worst.get(name, 0.0), high)
                print(f"{name:<16}{table:<18}{statistics.median(samples):>9.1f}{high:>9.1f}")
        month = max(worst[k] for k in worst if k != "all time")
        verdict = "MET" if month <= TARGET_MS else "NOT MET"
        print(
            f"\nbench_metrics: dashboard queries p95 {month:.0f} ms (month filters) / "
            f"{worst['all time']:.0f} ms (all time), target {TARGET_MS:.0f} ms ({verdict})"
            f"{rebuilt}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        return 0
    finally:
        if scratch is not None and not args.keep:
            base = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
            await _admin(f"{base}/postgres", f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", help="a PostgreSQL database (default: a scratch one)")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query and filter")
    parser.add_argument("--skip-generate", action="store_true", help="use the rows already there")
    parser.add_argument("--skip-rebuild", action="store_true", help="time the queries only")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
