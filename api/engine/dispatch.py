"""Running bot turns after the inbound message is committed, in the background of the process
that received it; the worker's sweeper picks up whatever a crashed process left behind."""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache

from sqlalchemy.ext.asyncio import AsyncSession

from api.config import get_settings
from api.db import on_commit
from api.engine.client import RasaGateway
from api.engine.turns import process_conversation

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task[int]] = set()


@lru_cache(maxsize=1)
def get_gateway() -> RasaGateway | None:
    settings = get_settings()
    return RasaGateway(settings.rasa) if settings.rasa.url else None


def schedule_turns(conversation_id: int) -> None:
    """Start handling a conversation's pending messages now, without waiting for it."""
    task = asyncio.get_running_loop().create_task(
        process_conversation(conversation_id, gateway=get_gateway())
    )
    _tasks.add(task)
    task.add_done_callback(_done)


def _done(task: asyncio.Task[int]) -> None:
    _tasks.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.error("bot turn failed; the sweeper will retry", exc_info=task.exception())


def schedule_turns_after_commit(session: AsyncSession, conversation_id: int) -> None:
    async def start() -> None:
        schedule_turns(conversation_id)

    on_commit(session, start)


async def wait_for_scheduled_turns() -> None:
    """Used at shutdown and by tests: let running turns finish."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
