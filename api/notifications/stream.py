"""The one Server-Sent Events transport, for the panel (`/painel/events`) and the API
(`/api/v1/events`): bus events as SSE frames (sse-starlette does the framing and the
client-disconnect handling), a comment heartbeat, and a stream that ends soon after the session
that opened it is revoked (api/web/streams.py).

Each frame carries the event's `event_id` as its SSE `id:`; a repeat (notifications are
published at least once) is forwarded once. Memory is bounded per subscriber: events wait in a queue of `QUEUE_SIZE`; a client that falls
that far behind is dropped (the stream ends, the browser reconnects and the panel refetches on
`ready`), and one that stops reading for `SEND_TIMEOUT_SECONDS` is disconnected by the library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

from api.notifications.bus import get_bus
from api.web.streams import while_live

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
QUEUE_SIZE = 256
SEND_TIMEOUT_SECONDS = 30.0
RETRY_MILLISECONDS = 3000
# Bus events whose type starts with this are private to the transport (the probe below), never
# forwarded to a client.
PRIVATE_PREFIX = "panel."
# A private bus event each stream publishes to itself: once it comes back, the subscription is
# live and the page can refetch whatever happened while it was connecting.
PROBE_TYPE = "panel.stream_probe"
PROBE_ATTEMPTS = 30
PROBE_INTERVAL_SECONDS = 0.1
# Live notifications are published at least once (api/notifications/live.py): a stream
# remembers this many recent event ids and forwards each id once.
SEEN_IDS = 1024


async def event_frames(*, announce_ready: bool) -> AsyncIterator[ServerSentEvent]:
    """`: connected`, then (with `announce_ready`) `event: ready` once the bus subscription is
    live, then one frame per bus event, with a heartbeat comment after `HEARTBEAT_SECONDS` of
    quiet. Ends when the subscription fails or this subscriber's queue overflows."""
    bus = get_bus()
    subscription = bus.subscribe()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=QUEUE_SIZE)
    nonce = secrets.token_hex(8)
    live = asyncio.Event()
    recent: deque[str] = deque(maxlen=SEEN_IDS)

    async def pump() -> None:
        async for event in subscription:
            kind = str(event.get("type", ""))
            if kind.startswith(PRIVATE_PREFIX):
                if kind == PROBE_TYPE and event.get("nonce") == nonce:
                    live.set()
                continue
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                log.warning("an event stream fell %d events behind: dropping it", QUEUE_SIZE)
                return

    task = asyncio.create_task(pump())
    try:
        yield ServerSentEvent(comment="connected", retry=RETRY_MILLISECONDS, sep="\n")
        if announce_ready:
            for _ in range(PROBE_ATTEMPTS):
                if task.done():
                    break
                with contextlib.suppress(Exception):
                    await bus.publish({"type": PROBE_TYPE, "nonce": nonce})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.wait(), timeout=PROBE_INTERVAL_SECONDS)
                    break
            yield ServerSentEvent(event="ready", data=json.dumps({"live": live.is_set()}), sep="\n")
        while not task.done():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ServerSentEvent(comment="heartbeat", sep="\n")
                continue
            event_id = str(event["event_id"]) if event.get("event_id") is not None else None
            if event_id is not None:
                if event_id in recent:
                    continue
                recent.append(event_id)
            yield ServerSentEvent(
                id=event_id,
                event=str(event.get("type", "message")),
                data=json.dumps(event, default=str),
                sep="\n",
            )
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def event_stream_response(
    *, is_live: Callable[[], Awaitable[bool]], announce_ready: bool
) -> EventSourceResponse:
    """The live event stream for one client, ending soon after `is_live` turns False."""
    return EventSourceResponse(
        while_live(event_frames(announce_ready=announce_ready), is_live),
        # Our own heartbeat goes through `while_live`, so the session is re-checked at least
        # that often; the library's ping would bypass the check.
        ping=0,
        sep="\n",
        send_timeout=SEND_TIMEOUT_SECONDS,
        headers={"Cache-Control": "no-cache"},
    )
