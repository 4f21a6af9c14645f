"""WhatsApp under open-loop load at fixed arrival rates, beside the Rasa server alone, in one run.

Starts nothing: the service (with its worker), the Twilio simulator and Rasa must be running.

For each arrival rate (for example 5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 80, 100 msg/s), two steps
run one after the other, each with a fresh set of infringers (50 by default) writing round robin, a
message every 1/rate seconds whatever the answers (open loop: nobody waits for a reply before the
next message). With --database-url, most of them (--known-share, 0.8) are known, as after a notice
campaign: their phone is on file, their case (one brand) is NOTIFICADO and the notice's WhatsApp
conversation is open, so a turn loads and moves a real case; the others write from numbers the
service has never seen (the unmatched queue). Both paths get the same mix:

- whatsapp: each message goes through the simulator's /_sim/inbound (a signed Twilio webhook to
  the service). Webhook acknowledgement = the simulator's own time for that POST. Turn latency =
  from the webhook POST to the LAST reply of that turn arriving at the simulator (both are the
  simulator's clock). With --database-url (make bench passes the service's), a reply belongs
  to the infringer's latest turn the service had finished (messages.handled_at) when it arrived:
  a turn's replies leave after its finish commits and before that conversation's next turn runs,
  so this is exact even when turns take longer than the infringer's gap between messages.
  Without it, a reply belongs to the latest message its infringer had sent before it arrived,
  which above saturation credits a slow turn's reply to the next message. A turn with no reply
  counts as unanswered.
- rasa: the same turns straight to Rasa's gateway channel
  (POST {RASA_URL}/webhooks/tratativa/webhook with X-Tratativa-Secret); the answer carries every
  reply of the turn, so latency = time to the answer. A known infringer's turns are sent as its
  own conversation ("conv-<id>"), so Rasa's custom actions (served by the service's action
  server, as for the whole path) load the same kind of case.

Before the first rate, a few turns (--warm-up, 10) go through each path unmeasured, so one-time
costs (the app's first route resolution, the first import of the actions, Rasa's first
prediction) do not land on the lowest rate.

A rate is sustained when p95 < 2 s and at least 99 % of the turns were answered. A path is not
run at the rates above its first rate not sustained (its backlog would spill into the next steps);
when a path sustains the highest rate tested, its figure is a lower bound. The last line is machine-readable:

    whatsapp-summary: whatsapp_rate=<msg/s> rasa_rate=<msg/s> rate_ratio=<x.xx> \\
        added_p50_ms=<n> ack_p99_ms=<n>

    .venv/bin/python scripts/bench_whatsapp.py --service-url http://127.0.0.1:8000 \\
        --sim-url http://127.0.0.1:8099 --rasa-url http://127.0.0.1:5005 \\
        --rates 5,10,15,20,25,30,35,40,50,60,80,100

Loopback only, bounded (rates, messages per rate, drain time, total time).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import os
import random
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

MAX_INFRINGERS = 200
MAX_MESSAGES = 1000
MAX_RATE = 200.0
SUSTAINED_P95_SECONDS = 2.0
SUSTAINED_ANSWERED = 0.99
QUIET_SECONDS = 2.0  # drain only: not part of any latency, replies carry the simulator's clock
TEXTS = (
    "oi, recebi uma notificação de vocês",
    "do que se trata?",
    "qual o valor?",
    "posso parcelar?",
    "vou pensar, obrigado",
    "como eu sei que isso não é golpe?",
)


@dataclass
class Turn:
    who: str
    text: str
    sid: str = ""  # whatsapp: the MessageSid the simulator posted
    posted_at: float = 0.0  # simulator clock (whatsapp) or perf_counter (rasa)
    ack: float | None = None
    latency: float | None = None
    error: bool = False


@dataclass
class Step:
    path: str
    rate: float
    turns: list[Turn] = field(default_factory=list)
    send_seconds: float = 0.0

    def latencies(self) -> list[float]:
        return sorted(t.latency for t in self.turns if t.latency is not None)

    def acks(self) -> list[float]:
        return sorted(t.ack for t in self.turns if t.ack is not None)

    @property
    def answered(self) -> int:
        return len(self.latencies())

    @property
    def errors(self) -> int:
        return sum(t.error for t in self.turns)

    def p(self, q: float) -> float | None:
        return percentile(self.latencies(), q)

    def ack_p(self, q: float) -> float | None:
        return percentile(self.acks(), q)

    @property
    def sustained(self) -> bool:
        p95 = self.p(95)
        return (
            bool(self.turns)
            and p95 is not None
            and p95 < SUSTAINED_P95_SECONDS
            and self.answered >= SUSTAINED_ANSWERED * len(self.turns)
        )

    def row(self) -> str:
        offered = len(self.turns) / max(self.send_seconds, 1e-9)
        return (
            f"{self.rate:>6g} {self.path:<9}{offered:>8.1f}{self.answered:>6}/{len(self.turns):<5}"
            f"{self.errors:>5}{_ms(self.p(50)):>9}{_ms(self.p(95)):>9}{_ms(self.p(99)):>9}"
            f"{_ms(self.ack_p(50)):>9}{_ms(self.ack_p(99)):>9}  {'yes' if self.sustained else 'no'}"
        )


HEADER = (
    f"{'msg/s':>6} {'path':<9}{'offered':>8}{'answered':>12}{'err':>5}{'p50':>9}{'p95':>9}"
    f"{'p99':>9}{'ack p50':>9}{'ack p99':>9}  p95<2s"
)


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing a non-loopback URL: {url}")
    return url.rstrip("/")


def new_phones(count: int) -> list[str]:
    numbers = random.sample(range(60_000_000, 100_000_000), count)
    return [f"+55119{n}" for n in numbers]


async def open_loop(rate: float, turns: list[Turn], send: Any) -> float:
    """Start send(turn) at t0 + i/rate for every turn, never waiting for an answer first."""
    started = time.monotonic()
    tasks = []
    for i, turn in enumerate(turns):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(turn)))
    send_seconds = time.monotonic() - started
    await asyncio.gather(*tasks)
    return send_seconds


def make_turns(who: Sequence[str], messages: int) -> list[Turn]:
    sent: dict[str, int] = defaultdict(int)
    turns = []
    for i in range(messages):
        name = who[i % len(who)]
        turns.append(Turn(who=name, text=TEXTS[sent[name] % len(TEXTS)]))
        sent[name] += 1
    return turns


def known_count(args: argparse.Namespace) -> int:
    """How many of a step's infringers are known (seeded): none without the database."""
    if not args.database_url:
        return 0
    share = max(0.0, min(1.0, float(args.known_share)))
    return round(int(args.infringers) * share)


async def seed_known(database_url: str, phones: Sequence[str]) -> list[str]:
    """Known infringers, as a notice campaign leaves them: each with its phone on file, a case
    of one brand already NOTIFICADO and the WhatsApp conversation the notice went out on.
    Returns the Rasa sender id of each conversation ("conv-<id>"), in the order of `phones`."""
    from decimal import Decimal

    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    import api.models  # noqa: F401  (every model mapped before the first statement)
    from api.brands.service import create_brand
    from api.cases.lifecycle import CaseStatus
    from api.cases.service import create_case, do_advance_status
    from api.contacts.models import ContactKind, ContactPoint, Infringer, InfringerKind
    from api.contacts.service import do_identify_sender
    from api.conversations.models import Channel
    from api.conversations.service import create_conversation, sender_id_for
    from api.db import make_engine, unit_of_work
    from api.identifiers.documents import cpf_check_digits
    from api.timeline.service import Actor

    async def nothing_after_commit(_session: AsyncSession) -> None:
        """The worker picks the seed's events up; this process runs no consumer inline (it
        would compete with the service it measures)."""

    engine = make_engine(database_url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    senders: list[str] = []
    try:
        async with unit_of_work(maker, after_commit=nothing_after_commit) as session:
            brand = await create_brand(
                session,
                name=f"Marca Bench {uuid.uuid4().hex[:8]}",
                base_amount=Decimal("2000.00"),
                floor_amount=Decimal("1200.00"),
                max_installments=6,
                pix_key="12345678000195",
                payee_name="Tratativa",
                payee_city="Sao Paulo",
            )
            for n, phone in enumerate(phones):
                first9 = f"{random.randrange(10**8, 10**9):09d}"
                infringer = Infringer(
                    kind=InfringerKind.PERSON,
                    name=f"Infrator Bench {n}",
                    document=first9 + cpf_check_digits(first9),
                )
                session.add(infringer)
                await session.flush()
                session.add(
                    ContactPoint(kind=ContactKind.PHONE, value=phone, infringer_id=infringer.id)
                )
                await session.flush()
                case = await create_case(
                    session,
                    brand_id=brand.id,
                    infringer_id=infringer.id,
                    claimed_amount=Decimal("2000.00"),
                    listings=[(f"https://produto.mercadolivre.com.br/MLB-{n}", "Mercado Livre")],
                )
                await do_advance_status(
                    session,
                    case=case,
                    path=[CaseStatus.EM_TRIAGEM, CaseStatus.APTO_NOTIFICAR, CaseStatus.NOTIFICADO],
                    actor=Actor.system(),
                    reason="bench",
                )
                found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
                conversation = await create_conversation(
                    session,
                    contact=found.contact,
                    channel=Channel.WHATSAPP,
                    address=found.address,
                    case=case,
                )
                senders.append(sender_id_for(conversation))
    finally:
        await engine.dispose()
    return senders


async def whatsapp_step(
    http: aiohttp.ClientSession, sim_url: str, rate: float, args: argparse.Namespace
) -> Step:
    phones = new_phones(args.infringers)
    known = known_count(args)
    if known:
        await seed_known(args.database_url, phones[:known])
    step = Step("whatsapp", rate, make_turns(phones, step_messages(rate, args)))
    async with http.get(f"{sim_url}/_sim") as response:
        after = (await response.json())["last_seq"]

    async def send(turn: Turn) -> None:
        try:
            async with http.post(
                f"{sim_url}/_sim/inbound",
                json={"from": turn.who, "body": turn.text, "profile_name": "Bench"},
            ) as response:
                result = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            turn.error = True
            return
        if result.get("status") != 200:
            turn.error = True
            return
        turn.posted_at = float(result["posted_at"])
        turn.ack = float(result["elapsed_ms"]) / 1000
        turn.sid = str(result.get("message_sid") or "")

    step.send_seconds = await open_loop(rate, step.turns, send)
    replies = await drain(http, sim_url, after, step.turns, wait=args.timeout)
    if args.database_url:
        finished = await finished_at(args.database_url, [t.sid for t in step.turns if t.sid])
        attribute_by_finish(step.turns, replies, finished)
    else:
        attribute(step.turns, replies)
    return step


async def drain(
    http: aiohttp.ClientSession, sim_url: str, after: int, turns: list[Turn], *, wait: float
) -> list[dict[str, Any]]:
    """Every message the simulator received since `after`, once each infringer's latest turn has
    a reply and nothing new came for QUIET_SECONDS (or `wait` seconds passed)."""
    phones = {t.who for t in turns}
    last_post: dict[str, float] = {}
    for t in turns:
        if not t.error:
            last_post[t.who] = max(last_post.get(t.who, 0.0), t.posted_at)
    collected: list[dict[str, Any]] = []
    cursor = after
    deadline = time.monotonic() + wait
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        try:
            async with http.get(
                f"{sim_url}/_sim/messages", params={"after": cursor, "wait": QUIET_SECONDS}
            ) as response:
                listed = await response.json()
            found = [m for m in listed["messages"] if phone_of(m) in phones]
            last_seq = listed["last_seq"]
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError):
            await asyncio.sleep(0.2)
            continue
        cursor = max(cursor, last_seq)
        if found:
            collected.extend(found)
            quiet_since = time.monotonic()
        latest: dict[str, float] = {}
        for m in collected:
            latest[phone_of(m)] = max(latest.get(phone_of(m), 0.0), m["received_at"])
        done = all(latest.get(p, 0.0) >= posted for p, posted in last_post.items())
        if done and time.monotonic() - quiet_since >= QUIET_SECONDS:
            break
    return collected


def phone_of(message: dict[str, Any]) -> str:
    """The infringer's phone a message went to ("whatsapp:+55…" at the simulator)."""
    return str(message["to"]).removeprefix("whatsapp:")


def attribute(turns: list[Turn], replies: list[dict[str, Any]]) -> None:
    """Latency of a turn = its last reply that came before the infringer's next message."""
    by_phone: dict[str, list[Turn]] = defaultdict(list)
    for t in turns:
        if not t.error:
            by_phone[t.who].append(t)
    for own in by_phone.values():
        own.sort(key=lambda t: t.posted_at)
    for reply in replies:
        own = by_phone.get(phone_of(reply), [])
        owner = None
        for t in own:
            if t.posted_at <= reply["received_at"]:
                owner = t
        if owner is not None:
            latency = reply["received_at"] - owner.posted_at
            owner.latency = max(owner.latency or 0.0, latency)


async def finished_at(database_url: str, sids: Sequence[str]) -> dict[str, float]:
    """When the service finished the turn of each inbound WhatsApp message (by MessageSid)."""
    import sqlalchemy as sa

    from api.conversations.models import Channel, Message
    from api.db import make_engine

    engine = make_engine(database_url)
    finished: dict[str, float] = {}
    try:
        async with engine.connect() as connection:
            for start in range(0, len(sids), 500):
                rows = await connection.execute(
                    sa.select(Message.provider_id, Message.handled_at).where(
                        Message.channel == Channel.WHATSAPP,
                        Message.provider_id.in_(sids[start : start + 500]),
                    )
                )
                for sid, handled_at in rows:
                    if sid and handled_at is not None:
                        finished[sid] = handled_at.timestamp()
    finally:
        await engine.dispose()
    return finished


def attribute_by_finish(
    turns: list[Turn], replies: list[dict[str, Any]], finished: dict[str, float]
) -> None:
    """Latency of a turn = its last reply; a reply belongs to the infringer's latest turn the
    service had finished when the reply arrived (same machine, same clock)."""
    by_phone: dict[str, list[tuple[float, Turn]]] = defaultdict(list)
    for t in turns:
        if not t.error and t.sid in finished:
            by_phone[t.who].append((finished[t.sid], t))
    for own in by_phone.values():
        own.sort(key=lambda pair: pair[0])
    for reply in replies:
        owner = None
        for done_at, t in by_phone.get(phone_of(reply), []):
            if done_at > reply["received_at"]:
                break
            owner = t
        if owner is not None:
            latency = reply["received_at"] - owner.posted_at
            owner.latency = max(owner.latency or 0.0, latency)


async def rasa_step(
    http: aiohttp.ClientSession, rasa_url: str, secret: str, rate: float, args: argparse.Namespace
) -> Step:
    run = uuid.uuid4().hex[:8]
    known = known_count(args)
    # The known infringers' turns reach the action server with their own conversation and case
    # (as the service's turns do); the others as a sender the service does not know.
    who = [
        *(await seed_known(args.database_url, new_phones(known)) if known else []),
        *(f"bench-{run}-{i}" for i in range(known, args.infringers)),
    ]
    step = Step("rasa", rate, make_turns(who, step_messages(rate, args)))
    locks = {w: asyncio.Lock() for w in who}  # not a wait: only keeps each sender's order

    async def send(turn: Turn) -> None:
        started = time.perf_counter()
        try:
            async with (
                locks[turn.who],
                http.post(
                    f"{rasa_url}/webhooks/tratativa/webhook",
                    json={
                        "sender": turn.who,
                        "message": turn.text,
                        "message_id": uuid.uuid4().hex,
                        "channel": "whatsapp",
                    },
                    headers={"X-Tratativa-Secret": secret},
                ) as response,
            ):
                await response.read()
        except (aiohttp.ClientError, TimeoutError):
            turn.error = True
            return
        if response.status != 200:
            turn.error = True
            return
        turn.latency = time.perf_counter() - started

    step.send_seconds = await open_loop(rate, step.turns, send)
    return step


def step_messages(rate: float, args: argparse.Namespace) -> int:
    """Messages of a step: --messages, or more so that arrivals last --min-seconds (a short
    burst above capacity ends before its queue shows in the p95)."""
    wanted = max(args.messages, math.ceil(rate * args.min_seconds))
    return int(min(MAX_MESSAGES, wanted))


def highest(steps: Sequence[Step]) -> float:
    return max((s.rate for s in steps if s.sustained), default=0.0)


def summarize(whatsapp: list[Step], rasa: list[Step]) -> str:
    w_rate, r_rate = highest(whatsapp), highest(rasa)
    ratio = w_rate / r_rate if r_rate else 0.0
    pairs = {s.rate: s for s in rasa}
    both = [(w, pairs[w.rate]) for w in whatsapp if w.rate in pairs]
    sustained_both = [(w, r) for w, r in both if w.sustained and r.sustained]
    chosen = sustained_both[-1] if sustained_both else (both[0] if both else None)
    added = 0.0
    if chosen is not None:
        w50, r50 = chosen[0].p(50), chosen[1].p(50)
        if w50 is not None and r50 is not None:
            added = (w50 - r50) * 1000
    ack_p99 = whatsapp[-1].ack_p(99) if whatsapp else None
    return (
        f"whatsapp-summary: whatsapp_rate={w_rate:g} rasa_rate={r_rate:g} "
        f"rate_ratio={ratio:.2f} added_p50_ms={added:.0f} "
        f"ack_p99_ms={(ack_p99 or 0) * 1000:.0f}"
    )


async def run(args: argparse.Namespace) -> int:
    sim_url = check_loopback(args.sim_url)
    service_url = check_loopback(args.service_url)
    rasa_url = check_loopback(args.rasa_url) if args.rasa_url else None
    args.infringers = max(1, min(args.infringers, MAX_INFRINGERS))
    args.messages = max(1, min(args.messages, MAX_MESSAGES))
    rates = sorted({min(MAX_RATE, float(r)) for r in args.rates.split(",") if float(r) > 0})
    # Enough connections that the pool never turns the open loop into a closed one.
    most = max((step_messages(r, args) for r in rates), default=args.messages)
    # aiohttp, not httpx: this client shares the two cores with what it measures, and aiohttp
    # costs about half the CPU per request.
    connector = aiohttp.TCPConnector(limit=most + 8)
    timeout = aiohttp.ClientTimeout(total=args.timeout + 30, connect=5.0)
    whatsapp: list[Step] = []
    rasa: list[Step] = []
    deadline = time.monotonic() + args.max_seconds
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        for url, what in ((f"{sim_url}/_sim", "simulator"), (f"{service_url}/health", "service")):
            try:
                async with http.get(url, raise_for_status=True) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                print(f"{what} not reachable at {url}: {exc!r}", file=sys.stderr)
                return 2
        if args.warm_up > 0:
            # One-time costs (the app's first route resolution, the action server's first
            # import of the actions, Rasa's first prediction) are not a rate's latency.
            warm = argparse.Namespace(
                **{
                    **vars(args),
                    "messages": args.warm_up,
                    "infringers": args.warm_up,
                    "min_seconds": 0,
                }
            )
            warmed = await whatsapp_step(http, sim_url, 2.0, warm)
            if rasa_url:
                await rasa_step(http, rasa_url, args.rasa_secret, 2.0, warm)
            print(f"warm-up: {warmed.answered}/{args.warm_up} turns through each path, not counted")
        print(
            f"{args.infringers} infringers ({known_count(args)} known: a notified case and its"
            f" conversation), per rate and path {args.messages} messages or "
            f"{args.min_seconds:g} s of arrivals, whichever is more"
        )
        print(HEADER, flush=True)
        w_on, r_on = True, bool(rasa_url)  # a path stops at its first rate not sustained
        for rate in rates:
            if time.monotonic() > deadline:
                print(f"{rate:>6g} skipped: --max-seconds reached")
                continue
            if not (w_on or r_on):
                print(f"{rate:>6g} skipped: neither path sustained the rate below")
                continue
            w = r = None
            if w_on:
                w = await whatsapp_step(http, sim_url, rate, args)
                whatsapp.append(w)
                print(w.row(), flush=True)
                w_on = w.sustained
            else:
                print(f"{rate:>6g} whatsapp  not run: a lower rate was not sustained")
            if r_on and rasa_url:
                r = await rasa_step(http, rasa_url, args.rasa_secret, rate, args)
                rasa.append(r)
                print(r.row(), flush=True)
                r_on = r.sustained
            elif rasa_url:
                print(f"{rate:>6g} rasa      not run: a lower rate was not sustained")
            if w is not None and r is not None:
                print(
                    f"{'':>6} {'ratio':<9}{'':>26}{_ratio(w.p(50), r.p(50)):>9}"
                    f"{_ratio(w.p(95), r.p(95)):>9}{_ratio(w.p(99), r.p(99)):>9}",
                    flush=True,
                )
    if not rasa_url:
        print("rasa alone: skipped (no --rasa-url / RASA_URL)")
    if whatsapp and whatsapp[0].answered < len(whatsapp[0].turns) // 2:
        print(
            "\nmost WhatsApp turns got no reply: is the worker running, RASA_URL set for the "
            "service, and TWILIO_API_BASE_URL pointing at the simulator?",
            file=sys.stderr,
        )
    print(
        f"ratio = whatsapp/rasa; sustained = p95 < {SUSTAINED_P95_SECONDS:g} s and "
        f">= {SUSTAINED_ANSWERED:.0%} answered; ack = webhook acknowledgement"
    )
    print(summarize(whatsapp, rasa))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--service-url", default="http://127.0.0.1:8000")
    parser.add_argument("--sim-url", default="http://127.0.0.1:8099")
    parser.add_argument("--rasa-url", default=os.environ.get("RASA_URL"))
    parser.add_argument(
        "--rasa-secret", default=os.environ.get("RASA_GATEWAY_SECRET", "dev-gateway-secret")
    )
    parser.add_argument(
        "--rates", default="5,10,15,20,25,30,35,40,50,60,80,100", help="msg/s, comma-separated"
    )
    parser.add_argument(
        "--infringers", type=int, default=50, help=f"per rate and path, at most {MAX_INFRINGERS}"
    )
    parser.add_argument(
        "--messages", type=int, default=100, help=f"per rate and path, at most {MAX_MESSAGES}"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to drain replies after a step"
    )
    parser.add_argument("--max-seconds", type=float, default=600.0, help="no new rate after it")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=10.0,
        help="each step's arrivals last at least this long (more messages at higher rates)",
    )
    parser.add_argument(
        "--warm-up", type=int, default=10, help="turns through each path before measuring"
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="the service's database: replies are matched to the turn the service had finished,"
        " and the known infringers are seeded there",
    )
    parser.add_argument(
        "--known-share",
        type=float,
        default=0.8,
        help="share of each step's infringers known to the service (phone on file, a notified"
        " case, the notice's conversation); the rest write from unknown numbers. Needs"
        " --database-url (without it, every sender is unknown)",
    )
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
