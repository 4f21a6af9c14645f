"""Worker loop: send the notices of queued batches as business hours and rate limits allow."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.config import Settings
from api.outreach.service import run_due_outreach

log = logging.getLogger(__name__)


async def run_outreach(
    settings: Settings, stop: asyncio.Event, *, every_seconds: float = 5.0
) -> None:
    """Runs until `stop` is set; a pass that sent something is followed at once by the next."""
    while not stop.is_set():
        sent = 0
        try:
            sent = (await run_due_outreach()).processed
        except Exception:
            log.exception("outreach pass failed")
        if sent:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
