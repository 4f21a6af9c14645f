#!/usr/bin/env python
"""Latency and throughput of a running Rasa server through the Tratativa gateway.

Starts nothing: point it at a server started with scripts/rasa-serve.sh (loopback only).

    RASA_GATEWAY_SECRET=... .venv/bin/python scripts/bench_nlu.py \
        [--url http://127.0.0.1:5005] [--requests 200] [--concurrency 10] [--max-seconds 120]

Runs the requests once with one sender at a time, then with C concurrent senders, and prints
p50/p95 latency and messages per second for each. Every sender gets a fresh conversation id
and sends a few turns, like real conversations (a long Rasa session is slower).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import socket
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

MAX_REQUESTS = 5000
MAX_CONCURRENCY = 50
TURNS_PER_SENDER = 5
SAMPLE_MESSAGES = (
    "oi boa tarde",
    "quem é vc?",
    "do que se trata?",
    "qual anuncio?",
    "ja tirei do ar",
    "quanto é pra resolver?",
    "mto caro, consigo pagar 300",
    "da pra parcelar em 5x?",
    "manda o pix",
    "paguei, segue comprovante",
    "meu cpf é 145.382.206-20",
    "quero falar com alguem",
    "Prezados, solicito cópia da notificação referente ao caso INF-2026-000123.",
    "é original, tenho nota",
    "para de me mandar msg",
)


@dataclass(frozen=True)
class Run:
    """The outcome of one batch."""

    label: str
    latencies: list[float]
    errors: int
    seconds: float

    def line(self) -> str:
        """One readable summary line."""
        if not self.latencies:
            return f"{self.label}: no successful request ({self.errors} errors)"
        ordered = sorted(self.latencies)
        p50 = statistics.median(ordered)
        p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        rate = len(ordered) / self.seconds if self.seconds else 0.0
        return (
            f"{self.label}: {len(ordered)} ok, {self.errors} errors, "
            f"p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, {rate:.1f} msg/s"
        )


def check_loopback(url: str) -> None:
    """Refuse anything but a loopback address: this is a local benchmark."""
    host = urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise SystemExit(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise SystemExit(f"bench_nlu only targets loopback servers, not {host!r}")


async def _sender(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    turns: int,
    offset: int,
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    sender = f"bench-{uuid.uuid4().hex[:12]}"
    for turn in range(turns):
        if time.monotonic() > deadline:
            return
        body = {
            "sender": sender,
            "message": SAMPLE_MESSAGES[(offset + turn) % len(SAMPLE_MESSAGES)],
            "message_id": f"{sender}-{turn}",
            "channel": "whatsapp",
            "metadata": {},
        }
        started = time.perf_counter()
        try:
            answer = await client.post(url, json=body, headers={"X-Tratativa-Secret": secret})
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            continue
        elapsed = time.perf_counter() - started
        if answer.status_code == 200 and answer.json().get("nlu") is not None:
            latencies.append(elapsed)
        else:
            errors.append(str(answer.status_code))


async def run_batch(
    label: str, base_url: str, secret: str, requests: int, concurrency: int, max_seconds: float
) -> Run:
    """Send `requests` turns with `concurrency` senders talking at once."""
    url = base_url.rstrip("/") + "/webhooks/tratativa/webhook"
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds
    senders = [
        min(TURNS_PER_SENDER, requests - start) for start in range(0, requests, TURNS_PER_SENDER)
    ]
    queue: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    for index, turns in enumerate(senders):
        queue.put_nowait((index, turns))

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            index, turns = queue.get_nowait()
            await _sender(client, url, secret, turns, index, deadline, latencies, errors)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Run(label, latencies, len(errors), seconds)


async def main_async(args: argparse.Namespace, secret: str) -> int:
    """Warm up, then the sequential and the concurrent batches."""
    await run_batch("warm-up", args.url, secret, 10, 1, args.max_seconds)
    runs = [
        await run_batch(
            "sequential (1 sender)", args.url, secret, args.requests, 1, args.max_seconds
        ),
        await run_batch(
            f"{args.concurrency} concurrent senders",
            args.url,
            secret,
            args.requests,
            args.concurrency,
            args.max_seconds,
        ),
    ]
    for run in runs:
        print(run.line())
    return 1 if any(not run.latencies for run in runs) else 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("RASA_URL", "http://127.0.0.1:5005"))
    parser.add_argument("--requests", "-n", type=int, default=200)
    parser.add_argument("--concurrency", "-c", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=120.0, help="per batch")
    args = parser.parse_args(argv)
    secret = os.environ.get("RASA_GATEWAY_SECRET", "")
    if not secret:
        parser.error("RASA_GATEWAY_SECRET must be set")
    if not 1 <= args.requests <= MAX_REQUESTS:
        parser.error(f"--requests must be 1..{MAX_REQUESTS}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        parser.error(f"--concurrency must be 1..{MAX_CONCURRENCY}")
    check_loopback(args.url)
    return asyncio.run(main_async(args, secret))


if __name__ == "__main__":
    sys.exit(main())
