"""WhatsApp latency and throughput, end to end, beside the Rasa server alone, in one run.

Starts nothing: the service (with its worker), the Twilio simulator and Rasa must be running.

- whatsapp: N fake infringers, each writing M messages one after another, through the
  simulator's /_sim/inbound (a signed Twilio webhook to the service). Per message: the time from
  the webhook POST to the first reply arriving at the simulator (its own receive timestamp, same
  machine), waited for with the simulator's long poll.
- rasa: the same N x M turns straight to Rasa's gateway channel
  (POST {RASA_URL}/webhooks/tratativa/webhook with X-Tratativa-Secret): time to the answer.

    .venv/bin/python scripts/bench_whatsapp.py --service-url http://127.0.0.1:8000 \\
        --sim-url http://127.0.0.1:8099 --rasa-url http://127.0.0.1:5005 --senders 10 --messages 5

Loopback only, bounded (senders, messages, total time).
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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

MAX_SENDERS = 100
MAX_MESSAGES = 50
QUIET_SECONDS = 0.3  # a turn may send several replies: wait for them before the next message
TEXTS = (
    "oi, recebi uma notificação de vocês",
    "do que se trata?",
    "qual o valor?",
    "posso parcelar?",
    "vou pensar, obrigado",
    "como eu sei que isso não é golpe?",
)


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    timeouts: int = 0
    errors: int = 0
    started: float = 0.0
    finished: float = 0.0

    @property
    def attempted(self) -> int:
        return len(self.latencies) + self.timeouts + self.errors

    def row(self) -> str:
        ordered = sorted(self.latencies)
        wall = max(self.finished - self.started, 1e-9)
        p50 = _ms(percentile(ordered, 50))
        p95 = _ms(percentile(ordered, 95))
        rate = len(ordered) / wall
        return (
            f"{self.name:<22}{p50:>10}{p95:>10}{rate:>10.1f}"
            f"{len(ordered):>7}/{self.attempted:<5}{self.timeouts:>9}{self.errors:>8}"
        )


def percentile(ordered: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of sorted values."""
    if not ordered:
        return None
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f} ms"


def check_loopback(url: str) -> str:
    host = urlsplit(url).hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"refusing a non-loopback URL: {url}")
    return url.rstrip("/")


def new_phone() -> str:
    return f"+55119{random.randint(60_000_000, 99_999_999)}"


async def whatsapp_sender(
    http: httpx.AsyncClient,
    sim_url: str,
    phase: Phase,
    *,
    messages: int,
    timeout: float,
    deadline: float,
) -> None:
    phone = new_phone()
    after = (await http.get(f"{sim_url}/_sim")).json()["last_seq"]
    for n in range(messages):
        if time.monotonic() > deadline:
            return
        posted_at = time.time()
        try:
            response = await http.post(
                f"{sim_url}/_sim/inbound",
                json={"from": phone, "body": TEXTS[n % len(TEXTS)], "profile_name": "Bench"},
            )
            result = response.json()
        except (httpx.HTTPError, ValueError):
            phase.errors += 1
            continue
        if result.get("status") != 200:
            phase.errors += 1
            continue
        replies = await poll(http, sim_url, phone, after, wait=timeout)
        if not replies:
            phase.timeouts += 1
            continue
        phase.latencies.append(max(0.0, replies[0]["received_at"] - posted_at))
        after = replies[-1]["seq"]
        while more := await poll(http, sim_url, phone, after, wait=QUIET_SECONDS):
            after = more[-1]["seq"]


async def poll(
    http: httpx.AsyncClient, sim_url: str, phone: str, after: int, *, wait: float
) -> list[dict[str, Any]]:
    """Messages to `phone` after `after`, waiting up to `wait` seconds (long poll)."""
    deadline = time.monotonic() + wait
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            response = await http.get(
                f"{sim_url}/_sim/messages",
                params={"to": phone, "after": after, "wait": min(remaining, 25.0)},
            )
            found: list[dict[str, Any]] = response.json()["messages"]
        except (httpx.HTTPError, ValueError, KeyError):
            await asyncio.sleep(0.1)
            continue
        if found:
            return found
    return []


async def rasa_sender(
    http: httpx.AsyncClient,
    rasa_url: str,
    secret: str,
    phase: Phase,
    *,
    index: int,
    messages: int,
    deadline: float,
) -> None:
    sender = f"bench-{uuid.uuid4().hex[:8]}-{index}"
    for n in range(messages):
        if time.monotonic() > deadline:
            return
        started = time.perf_counter()
        try:
            response = await http.post(
                f"{rasa_url}/webhooks/tratativa/webhook",
                json={
                    "sender": sender,
                    "message": TEXTS[n % len(TEXTS)],
                    "message_id": uuid.uuid4().hex,
                    "channel": "whatsapp",
                },
                headers={"X-Tratativa-Secret": secret},
            )
        except httpx.TimeoutException:
            phase.timeouts += 1
            continue
        except httpx.HTTPError:
            phase.errors += 1
            continue
        if response.status_code != 200:
            phase.errors += 1
            continue
        phase.latencies.append(time.perf_counter() - started)


async def run(args: argparse.Namespace) -> int:
    sim_url = check_loopback(args.sim_url)
    service_url = check_loopback(args.service_url)
    rasa_url = check_loopback(args.rasa_url) if args.rasa_url else None
    senders = max(1, min(args.senders, MAX_SENDERS))
    messages = max(1, min(args.messages, MAX_MESSAGES))
    limits = httpx.Limits(max_connections=2 * senders + 4)
    timeout = httpx.Timeout(args.timeout + 30, connect=5.0)
    phases: list[Phase] = []
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        for url, what in ((f"{sim_url}/_sim", "simulator"), (f"{service_url}/health", "service")):
            try:
                (await http.get(url)).raise_for_status()
            except httpx.HTTPError as exc:
                print(f"{what} not reachable at {url}: {exc!r}", file=sys.stderr)
                return 2

        whatsapp = Phase("whatsapp end to end")
        whatsapp.started = time.monotonic()
        deadline = whatsapp.started + args.max_seconds
        await asyncio.gather(
            *(
                whatsapp_sender(
                    http,
                    sim_url,
                    whatsapp,
                    messages=messages,
                    timeout=args.timeout,
                    deadline=deadline,
                )
                for _ in range(senders)
            )
        )
        whatsapp.finished = time.monotonic()
        phases.append(whatsapp)

        if rasa_url:
            rasa = Phase("rasa alone (gateway)")
            rasa.started = time.monotonic()
            deadline = rasa.started + args.max_seconds
            await asyncio.gather(
                *(
                    rasa_sender(
                        http,
                        rasa_url,
                        args.rasa_secret,
                        rasa,
                        index=i,
                        messages=messages,
                        deadline=deadline,
                    )
                    for i in range(senders)
                )
            )
            rasa.finished = time.monotonic()
            phases.append(rasa)

    print(f"\n{senders} concurrent senders x {messages} messages")
    print(
        f"{'':<22}{'p50':>10}{'p95':>10}{'msg/s':>10}{'ok/total':>13}{'timeouts':>9}{'errors':>8}"
    )
    for phase in phases:
        print(phase.row())
    if not rasa_url:
        print("rasa alone: skipped (no --rasa-url / RASA_URL)")
    if whatsapp.timeouts > whatsapp.attempted // 2:
        print(
            "\nmost WhatsApp turns got no reply: is the worker running, RASA_URL set for the "
            "service, and TWILIO_API_BASE_URL pointing at the simulator?",
            file=sys.stderr,
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--service-url", default="http://127.0.0.1:8000")
    parser.add_argument("--sim-url", default="http://127.0.0.1:8099")
    parser.add_argument("--rasa-url", default=os.environ.get("RASA_URL"))
    parser.add_argument(
        "--rasa-secret", default=os.environ.get("RASA_GATEWAY_SECRET", "dev-gateway-secret")
    )
    parser.add_argument("--senders", type=int, default=10, help=f"at most {MAX_SENDERS}")
    parser.add_argument(
        "--messages", type=int, default=5, help=f"per sender, at most {MAX_MESSAGES}"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a reply")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="per phase")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
