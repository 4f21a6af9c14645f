"""Worker loop: sync every mailbox; one failing never blocks the others."""

from __future__ import annotations

import asyncio

from api.config import Settings


async def run_mailboxes(settings: Settings, stop: asyncio.Event) -> None:
    """Runs until `stop` is set."""
    await stop.wait()
