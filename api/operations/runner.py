"""Worker loop: due alerts every minute."""

from __future__ import annotations

import asyncio

from api.config import Settings


async def run_operations(settings: Settings, stop: asyncio.Event) -> None:
    """Runs until `stop` is set."""
    await stop.wait()
