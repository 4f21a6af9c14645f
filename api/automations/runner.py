"""Worker loop: time-based rules and scheduled actions."""

from __future__ import annotations

import asyncio

from api.config import Settings


async def run_automations(settings: Settings, stop: asyncio.Event) -> None:
    """Runs until `stop` is set."""
    await stop.wait()
