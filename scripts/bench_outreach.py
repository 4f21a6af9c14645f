"""Time the notice sends (`run_due_outreach`): the PDF alone, then a batch of N cases queued.

    .venv/bin/python scripts/bench_outreach.py                  # scratch SQLite, 200 cases
    .venv/bin/python scripts/bench_outreach.py --cases 500 --postgres

A scratch database (SQLite file, or with --postgres a new database on BENCH_PG_URL, default
postgresql+asyncpg://postgres@127.0.0.1:5432/test as the admin database) is migrated, filled
with N cases ready to notify (three listings, one e-mail address each), and dropped at the end.
The rate limit is lifted for the run so the figure is the cost of one send: claiming the item,
locking the case, rendering and storing the PDF, the outbox row, the status move, timeline lines
and events (in-process event consumers included), one transaction per case.

Prints the PDF's size and median render time, the batch's throughput, and a summary line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# A Wednesday at 14:00 in São Paulo: inside business hours.
OPEN = dt.datetime(2026, 12, 2, 17, 0, tzinfo=dt.UTC)


async def run(cases: int) -> None:
    import api.channels  # registers the channels' composers
    import api.models  # noqa: F401
    from api.cases.lifecycle import CaseStatus
    from api.cases.service import get_case
    from api.conversations.models import Channel
    from api.db import get_engine, unit_of_work
    from api.outreach.notice import build_content
    from api.outreach.pdf import render_notice_pdf
    from api.outreach.service import do_create_batch, run_due_outreach
    from api.timeline.service import Actor
    from tests.factories import make_brand, make_case, make_infringer

    ids: list[int] = []
    async with unit_of_work() as session:
        brand = await make_brand(session, legal_name="Marca Ação Indústria Ltda.")
        for i in range(cases):
            infringer = await make_infringer(
                session,
                name=f"João Conceição {i}",
                emails=(f"loja{i}.{uuid.uuid4().hex[:6]}@exemplo.com.br",),
            )
            case = await make_case(
                session,
                brand=brand,
                infringer=infringer,
                status=CaseStatus.APTO_NOTIFICAR,
                listings=tuple(
                    f"https://produto.mercadolivre.com.br/MLB-{i}-{k}" for k in range(3)
                ),
            )
            ids.append(case.id)
        first = await get_case(session, case_id=ids[0])
        assert first is not None
        content = build_content(
            first, deadline=dt.date(2026, 12, 9), notice_date=dt.date(2026, 12, 2)
        )
    timings = []
    for _ in range(30):
        started = time.perf_counter()
        pdf = render_notice_pdf(content)
        timings.append(time.perf_counter() - started)
    render_ms = statistics.median(timings) * 1000
    print(f"pdf: {len(pdf)} bytes, render median {render_ms:.1f} ms (30 runs)")

    async with unit_of_work() as session:
        batch = await do_create_batch(
            session, case_ids=ids, channel=Channel.EMAIL, actor=Actor.system(), now=OPEN
        )
        batch_id = batch.id
    started = time.perf_counter()
    result = await run_due_outreach(now=OPEN, batch_id=batch_id, limit=cases)
    elapsed = time.perf_counter() - started
    assert result.processed == cases, result
    rate = result.processed / elapsed
    print(f"batch: {result.processed} notices queued in {elapsed:.2f} s")
    print(
        f"summary: {rate:.1f} notices/s per worker, {1000 / rate:.0f} ms each "
        f"(PDF {render_ms:.0f} ms of it), PDF {len(pdf) / 1024:.1f} KiB"
    )
    await get_engine().dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    args = parser.parse_args()

    os.environ.setdefault("SECRET_KEY", "bench-outreach-secret-key-long-enough-for-hs256")
    os.environ["STORAGE_DIR"] = tempfile.mkdtemp(prefix="tratativa-bench-outreach-")
    os.environ["OUTREACH_EMAIL_PER_MINUTE"] = str(10 * args.cases + 1000)
    from tests.conftest import create_scratch_database, drop_scratch_database

    base = (
        os.environ.get("BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
        if args.postgres
        else f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='tratativa-bench-')}/bench.db"
    )
    url = create_scratch_database(base)
    os.environ["DATABASE_URL"] = url
    try:
        from api.migrate import upgrade

        upgrade(url)
        asyncio.run(run(args.cases))
    finally:
        drop_scratch_database(url)


if __name__ == "__main__":
    main()
