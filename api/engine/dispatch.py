"""Running bot turns after the inbound message is committed, in the background of the process
that received it; the worker's sweeper picks up whatever a crashed process left behind."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import lru_cache
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.registry import build_senders
from api.config import get_settings
from api.conversations.models import Channel
from api.db import on_commit
from api.engine.client import get_gateway
from api.engine.turns import process_conversation
from api.outbox.senders import ChannelSender
from api.outbox.worker import deliver_due

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task[int]] = set()


@lru_cache(maxsize=1)
def get_senders() -> dict[Channel, ChannelSender]:
    return build_senders(get_settings())


async def run_turns_and_deliver(conversation_id: int) -> int:
    """Handle the pending turns, then send their replies right away instead of waiting for the
    worker's next pass (claims are leased, so the worker and this never send a row twice)."""
    handled = await process_conversation(conversation_id, gateway=get_gateway())
    if handled:
        await deliver_due(get_senders(), conversation_id=conversation_id)
    return handled


def spawn(work: Coroutine[Any, Any, int]) -> None:
    """Run `work` in the background of this process; a failure is logged, and whatever it left
    undone is the worker's (its sweeps read the database, not this process's memory)."""
    task = asyncio.get_running_loop().create_task(work)
    _tasks.add(task)
    task.add_done_callback(_done)


def schedule_turns(conversation_id: int) -> None:
    """Start handling a conversation's pending messages now, without waiting for it."""
    spawn(run_turns_and_deliver(conversation_id))


def _done(task: asyncio.Task[int]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("background turn work failed; the worker will retry", exc_info=task.exception())


def schedule_turns_after_commit(session: AsyncSession, conversation_id: int) -> None:
    async def start() -> None:
        schedule_turns(conversation_id)

    on_commit(session, start)


async def wait_for_scheduled_turns() -> None:
    """Used at shutdown and by tests: let running turns finish."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
