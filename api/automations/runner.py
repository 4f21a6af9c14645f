"""Worker loop: time-based rules and scheduled actions, once a minute (at most a minute late).

Importing this module also registers the event-triggered rules' durable consumer, which the
worker's event runner drains."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from api.automations import consumer as _consumer  # noqa: F401  (registers the consumer)
from api.automations.due import run_due_rules
from api.config import Settings
from api.db import utcnow

log = logging.getLogger(__name__)
EVERY_SECONDS = 60.0


async def run_automations(
    settings: Settings, stop: asyncio.Event, *, every_seconds: float = EVERY_SECONDS
) -> None:
    """Runs until `stop` is set."""
    while not stop.is_set():
        try:
            taken = await run_due_rules(utcnow())
            if taken:
                log.info("automations: %d actions taken", taken)
        except Exception:
            log.exception("automation sweep failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)
