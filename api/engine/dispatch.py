"""Running bot turns after the inbound message is committed, in the background of the process
that received it; the worker's sweeper picks up whatever a crashed process left behind.

`BACKGROUND_TURNS` is the turn scheduler the inbound pipeline asks (api.conversations.scheduling):
the app installs it for every request, the worker for its run. A message whose media are still
references has them fetched first (its channel's media fetcher), then its turn runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Coroutine, Sequence
from functools import lru_cache
from typing import Any

from api.channels.registry import build_senders, media_fetchers
from api.config import get_settings
from api.conversations.models import Channel
from api.conversations.scheduling import TurnRequest
from api.engine.client import get_gateway
from api.engine.turns import process_conversation
from api.events.consumers import inline_drains_in_background, wait_for_inline_drains
from api.outbox.senders import ChannelSender, Envelope
from api.outbox.worker import send_claimed

log = logging.getLogger(__name__)
_tasks: set[asyncio.Task[int]] = set()


@lru_cache(maxsize=1)
def get_senders() -> dict[Channel, ChannelSender]:
    return build_senders(get_settings())


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
_slots = weakref.WeakKeyDictionary()


def _turn_slots() -> asyncio.Semaphore:
    """This event loop's turn slots (TURNS_PER_PROCESS)."""
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(get_settings().turns_per_process)
    return slots


async def run_turns_and_deliver(conversation_id: int) -> int:
    """Handle the pending turns, sending each turn's replies right away instead of waiting for
    the worker's next pass: the turn's own transaction claims them (claims are leased, so the
    worker and this never send a row twice).

    At most TURNS_PER_PROCESS of these run at once in a process; the others wait for a slot in
    arrival order (their messages are in the database: a crash while waiting loses nothing, the
    worker's sweeper takes them). The inline event consumers woken by the turn's commits run
    beside it, not before the replies go out (their cursors are durable;
    `wait_for_scheduled_turns` waits for them)."""
    async with _turn_slots():
        with inline_drains_in_background():
            return await process_conversation(
                conversation_id, gateway=get_gateway(), deliver=_send_claimed
            )


async def _send_claimed(items: Sequence[tuple[int, Envelope]]) -> int:
    return await send_claimed(get_senders(), items)


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


async def wait_for_scheduled_turns() -> None:
    """Used at shutdown and by tests: let running turns, and the consumers they woke, finish."""
    while _tasks:
        await asyncio.gather(*list(_tasks), return_exceptions=True)
    await wait_for_inline_drains()


async def close_senders() -> None:
    """Close the connections this process's senders opened (shutdown; they reopen on their
    next use). A turn still running is not waited for: the HTTP server has stopped, so its
    actions could not reach us; it is cancelled with the loop and the worker's sweeper runs it
    again when its lease ends, as after a crash."""
    if get_senders.cache_info().currsize == 0:
        return  # nothing was sent from this process: nothing to close
    for sender in get_senders().values():
        close = getattr(sender, "aclose", None)
        if close is not None:
            try:
                await close()
            except Exception:
                log.warning("closing the %s sender failed", sender.channel, exc_info=True)


async def fetch_media_then_turns(channel: Channel, message_id: int) -> int:
    """Right after the webhook's commit: fetch this message's media, then run its turn (and the
    ones waiting behind it). Returns how many turns ran; what fails here the worker retries."""
    fetcher = media_fetchers().get(channel)
    if fetcher is None:
        return 0
    handled = 0
    for conversation_id in await fetcher(message_id=message_id):
        handled += await run_turns_and_deliver(conversation_id)
    return handled


async def fetch_media_once() -> int:
    """One pass of the worker: fetch due media (crash leftovers, retries), then run the turns
    that were waiting for them. Returns how many turns ran."""
    handled = 0
    for fetcher in media_fetchers().values():
        for conversation_id in await fetcher():
            handled += await run_turns_and_deliver(conversation_id)
    return handled


async def run_media_fetcher(stop: asyncio.Event, *, every_seconds: float = 1.0) -> None:
    """The worker's loop over `fetch_media_once`."""
    while not stop.is_set():
        try:
            await fetch_media_once()
        except Exception:
            log.exception("media fetch pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)


class BackgroundTurns:
    """The turn scheduler of a serving process: the turn (or the media fetch, then the turn)
    runs as a background task of this process; module functions are looked up at call time."""

    def request_turn(self, request: TurnRequest) -> None:
        if request.media_pending:
            spawn(fetch_media_then_turns(request.channel, request.message_id))
        else:
            schedule_turns(request.conversation_id)


BACKGROUND_TURNS = BackgroundTurns()
