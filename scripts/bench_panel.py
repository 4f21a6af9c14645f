"""Panel latency at scale: server time of the cases search, the inbox and the case page.

    .venv/bin/python scripts/bench_panel.py --database-url postgresql+asyncpg://postgres@127.0.0.1/db

Point it at a migrated database filled by scripts/generate_dataset.py (100,000 cases and
1,000,000 messages for the issue's targets). It creates a bench analyst, logs in through the
panel's real login form, then requests the pages in-process (ASGI, no network: the time is the
service's own — routing, auth, queries, rendering) and prints p50/p95/max per page against the
targets: case search p95 ≤ 100 ms; inbox, case page, a conversation's timeline (the live
fragment of the conversation page, longest threads of the sample) and the unmatched-mail queue
p95 ≤ 50 ms. Searches cycle through what
analysts type: a reference, a name piece, a phone with and without the ninth digit, an e-mail
address, a piece of a listing URL, and filters (status, brand, deadline passed) with sorting.
Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS_MS = {
    "busca de casos": 100.0,
    "caixa de entrada": 50.0,
    "página do caso": 50.0,
    "linha do tempo": 50.0,
    "não vinculados": 50.0,
}
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


CPU_MS: dict[str, float] = {}
PROFILE_DIR: Path | None = None  # --profile DIR: one cProfile file per page


async def measure(
    label: str, count: int, call: Callable[[int], Awaitable[int]]
) -> tuple[str, list[float]]:
    for i in range(min(5, count)):  # warm caches and the connection pool
        await call(i)
    times: list[float] = []
    profiler = cProfile.Profile() if PROFILE_DIR is not None else None
    if profiler is not None:
        profiler.enable()
    cpu_started = time.process_time()
    for i in range(count):
        started = time.perf_counter()
        status = await call(i)
        times.append((time.perf_counter() - started) * 1000)
        if status != 200:
            raise SystemExit(f"{label}: HTTP {status} on request {i}")
    if profiler is not None and PROFILE_DIR is not None:
        profiler.disable()
        profiler.dump_stats(PROFILE_DIR / f"{label.replace(' ', '_')}.prof")
    # The service's own CPU per request (its Python: routing, ORM, rendering), which a busy
    # machine does not inflate the way it inflates wall time.
    CPU_MS[label] = (time.process_time() - cpu_started) / count * 1000
    return label, times


async def run(args: argparse.Namespace) -> int:
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-that-is-long-enough-for-hs256-use")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import logging

    import httpx
    import sqlalchemy as sa

    logging.getLogger("httpx").setLevel(logging.WARNING)

    from api.analysts.models import Analyst, Role
    from api.analysts.service import create_analyst
    from api.app import create_app
    from api.cases.models import Case, Listing
    from api.contacts.models import ContactKind, ContactPoint
    from api.db import unit_of_work
    from api.panel import install_panel

    email = "bench.panel@tratativa.local"
    password = "bench-panel-password"
    async with unit_of_work() as session:
        if await session.scalar(sa.select(Analyst.id).where(Analyst.email == email)) is None:
            await create_analyst(
                session, email=email, password=password, role=Role.SUPERVISOR, name="Bench"
            )
        total_cases = int(await session.scalar(sa.select(sa.func.count()).select_from(Case)) or 0)
        sample = list(
            (
                await session.execute(
                    sa.select(Case.id, Case.reference)
                    .order_by(Case.id)
                    .offset(max(0, total_cases // 2 - 25))
                    .limit(50)
                )
            ).all()
        )
        phones = list(
            await session.scalars(
                sa.select(ContactPoint.value)
                .where(ContactPoint.kind == ContactKind.PHONE)
                .order_by(ContactPoint.id.desc())
                .limit(20)
            )
        )
        emails = list(
            await session.scalars(
                sa.select(ContactPoint.value)
                .where(ContactPoint.kind == ContactKind.EMAIL)
                .order_by(ContactPoint.id)
                .offset(1000)
                .limit(20)
            )
        )
        urls = list(
            await session.scalars(sa.select(Listing.url).order_by(Listing.id).offset(500).limit(20))
        )
        brand_id = await session.scalar(sa.text("SELECT id FROM brands ORDER BY id LIMIT 1"))
        # Conversations of the sampled cases, the longest first (e-mail threads run to 18).
        conversations = list(
            await session.scalars(
                sa.text(
                    "SELECT c.id FROM conversations c JOIN messages m ON m.conversation_id = c.id"
                    " WHERE c.case_id = ANY(:ids) GROUP BY c.id ORDER BY count(*) DESC LIMIT 50"
                ),
                {"ids": [case_id for case_id, _ in sample]},
            )
        )
    if not sample:
        raise SystemExit("no cases: fill the database with scripts/generate_dataset.py first")

    def national(e164: str, ninth: bool) -> str:
        digits = e164.removeprefix("+55")
        area, number = digits[:2], digits[2:]
        if not ninth and len(number) == 9:
            number = number[1:]
        return f"({area}) {number[:-4]}-{number[-4:]}"

    searches: list[dict[str, str]] = []
    for i in range(20):
        _case_id, reference = sample[i]
        searches += [
            {"q": reference},
            {"q": f"Bench {1000 + i * 37}"},
            {"q": national(phones[i % len(phones)], ninth=True)},
            {"q": national(phones[i % len(phones)], ninth=False)},
            {"q": emails[i % len(emails)]},
            {"q": urls[i % len(urls)].split("/")[-1]},
            {"status": "EM_NEGOCIACAO", "ordem": "prazo", "dir": "asc"},
            {"marca": str(brand_id), "prazo_vencido": "1"},
            {"ordem": "nome", "pagina": "3"},
            {},
        ]

    app = create_app()
    if not any(getattr(route, "path", "") == "/painel/login" for route in app.routes):
        install_panel(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        page = await client.get("/painel/login")
        token = _CSRF_RE.search(page.text)
        assert token is not None
        response = await client.post(
            "/painel/login",
            data={"email": email, "senha": password, "csrf_token": token.group(1)},
        )
        if response.status_code != 303:
            raise SystemExit(f"login failed: {response.status_code}")

        async def search(i: int) -> int:
            return (
                await client.get("/painel/casos", params=searches[i % len(searches)])
            ).status_code

        async def inbox(i: int) -> int:
            tab = ("aguardando", "em-atendimento", "minhas")[i % 3]
            return (await client.get("/painel/caixa", params={"aba": tab})).status_code

        async def case_page(i: int) -> int:
            return (await client.get(f"/painel/casos/{sample[i % len(sample)][0]}")).status_code

        async def timeline(i: int) -> int:
            conversation_id = conversations[i % len(conversations)]
            url = f"/painel/conversas/{conversation_id}/linha-do-tempo"
            return (await client.get(url)).status_code

        async def unmatched(_i: int) -> int:
            return (await client.get("/painel/nao-vinculados")).status_code

        results = [
            await measure("busca de casos", args.requests, search),
            await measure("caixa de entrada", args.requests, inbox),
            await measure("página do caso", args.requests, case_page),
            await measure("linha do tempo", args.requests, timeline),
            await measure("não vinculados", args.requests, unmatched),
        ]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"panel bench: {total_cases} cases, {args.requests} requests per page (server time; "
        f"load average {load:.1f} on {os.cpu_count()} cores)"
    )
    missed = 0
    for label, times in results:
        p95 = percentile(times, 0.95)
        target = TARGETS_MS[label]
        verdict = "MET" if p95 <= target else "NOT MET"
        missed += verdict != "MET"
        print(
            f"  {label:17s} p50 {statistics.median(times):7.1f} ms  p95 {p95:7.1f} ms  "
            f"max {max(times):7.1f} ms  cpu {CPU_MS[label]:5.1f} ms/req  "
            f"(target p95 ≤ {target:.0f} ms: {verdict})"
        )
    summary = ", ".join(f"{label} p95 {percentile(t, 0.95):.0f} ms" for label, t in results)
    print(f"panel: {summary}")
    return 1 if missed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--database-url", required=True, help="postgresql+asyncpg://…")
    parser.add_argument("--requests", type=int, default=200, help="requests per page")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile file per page into this folder"
    )
    args = parser.parse_args()
    if args.profile is not None:
        global PROFILE_DIR
        args.profile.mkdir(parents=True, exist_ok=True)
        PROFILE_DIR = args.profile
    url = args.database_url
    if url.startswith("postgresql://"):
        args.database_url = "postgresql+asyncpg://" + url.removeprefix("postgresql://")
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
