"""What happens after an inbound message is stored: the pipeline asks for a bot turn.

`do_receive_message` decides (a new, answerable message gets a turn; a replay, an auto-reply or
a bounce does not) and hands a `TurnRequest` to the turn scheduler of the running process,
after the transaction commits (a rolled-back message asks for nothing). The domain does not
run turns itself: the engine provides the scheduler (`api.engine.dispatch.BACKGROUND_TURNS`),
and the processes that receive messages install it — the app for each request it serves
(`api.web.scheduling.TurnSchedulerMiddleware`), the worker for its whole run. Used as a plain
library (a test, a script), nothing is installed and nothing is scheduled: the message stays
pending for whoever runs turns (the worker's sweeper), and a debug line says so.

A context variable rather than a module global: an app built by one test must not make
another test's direct call to the pipeline start a bot turn.

A held conversation is not special here: its turn still goes to Rasa (which records the user
turn while paused and stays silent), and the holder hears of the message from the live
notifications, a consumer of the `message.received` event.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from api.conversations.models import Channel
from api.db import on_commit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnRequest:
    conversation_id: int
    message_id: int
    channel: Channel
    # The message's media are still to be fetched (after the webhook was acknowledged): the
    # scheduler fetches them first; the turn waits for them in any case (api.engine.turns).
    media_pending: bool = False


class TurnScheduler(Protocol):
    def request_turn(self, request: TurnRequest) -> None:
        """Start the turn (in the background); must not block or raise for a busy engine."""


_scheduler: ContextVar[TurnScheduler | None] = ContextVar("turn_scheduler", default=None)


def get_turn_scheduler() -> TurnScheduler | None:
    return _scheduler.get()


def install_turn_scheduler(scheduler: TurnScheduler | None) -> Token[TurnScheduler | None]:
    """Install `scheduler` for the current context (and the tasks it starts from now on)."""
    return _scheduler.set(scheduler)


def uninstall_turn_scheduler(token: Token[TurnScheduler | None]) -> None:
    _scheduler.reset(token)


@contextmanager
def turn_scheduler(scheduler: TurnScheduler | None) -> Iterator[None]:
    """`with turn_scheduler(s):` — messages received inside the block ask `s` for turns."""
    token = install_turn_scheduler(scheduler)
    try:
        yield
    finally:
        uninstall_turn_scheduler(token)


def request_turn_after_commit(session: AsyncSession, request: TurnRequest) -> None:
    """Ask this context's scheduler for the turn once `session`'s transaction has committed."""
    scheduler = get_turn_scheduler()
    if scheduler is None:
        log.debug(
            "no turn scheduler installed: message %s stays pending for the worker",
            request.message_id,
        )
        return
    installed = scheduler

    async def start() -> None:
        installed.request_turn(request)

    on_commit(session, start)
