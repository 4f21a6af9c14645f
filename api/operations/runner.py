"""Worker loop: due alerts every minute (at most a minute late), then the alert digests.

Importing this module registers the event-driven alert consumers (api/operations/consumer.py
and live.py), which the worker's event runner drains."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.config import Settings
from api.db import utcnow
from api.operations import consumer as _consumer  # noqa: F401  (registers the consumer)
from api.operations import live as _live  # noqa: F401  (registers the consumer)
from api.operations.digests import DigestSender, deliver_due_digests
from api.operations.due import run_due_alerts
from api.operations.mailer import SmtpDigestSender

log = logging.getLogger(__name__)
EVERY_SECONDS = 60.0


async def run_operations_once(sender: DigestSender | None) -> tuple[int, int]:
    """One sweep now, then deliver the digests that are due: (alerts raised, digests sent)."""
    raised = await run_due_alerts(utcnow())
    sent = await deliver_due_digests(sender) if sender is not None else 0
    return raised, sent


async def run_operations(
    settings: Settings,
    stop: asyncio.Event,
    *,
    every_seconds: float = EVERY_SECONDS,
    sender: DigestSender | None = None,
) -> None:
    """Runs until `stop` is set."""
    sender = sender or SmtpDigestSender.from_settings(settings)
    while not stop.is_set():
        try:
            raised, sent = await run_operations_once(sender)
            if raised or sent:
                log.info("operations: %d alerts raised, %d digests sent", raised, sent)
        except Exception:
            log.exception("operations sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
