"""`GET /api/v1/events`: Server-Sent Events for analysts (new escalations, new messages)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from api.analysts.models import SessionKind
from api.notifications.bus import get_bus
from api.web.deps import CurrentApiSession
from api.web.streams import session_check, while_live

router = APIRouter(prefix="/api/v1", tags=["events"])
HEARTBEAT_SECONDS = 15.0


async def event_stream(request: Request) -> AsyncIterator[str]:
    """Events as SSE frames, with a comment heartbeat so proxies keep the connection open."""
    subscription = get_bus().subscribe()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def pump() -> None:
        async for event in subscription:
            if not str(event.get("type", "")).startswith("panel."):  # the panel's own probes
                await queue.put(event)

    task = asyncio.create_task(pump())
    try:
        yield ": connected\n\n"
        while not await request.is_disconnected():
            try:
                event = await asyncio.wait_for(queue.get(), timeout=HEARTBEAT_SECONDS)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            yield f"event: {event.get('type', 'message')}\ndata: {json.dumps(event, default=str)}\n\n"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


@router.get("/events")
async def events(request: Request, api_session: CurrentApiSession) -> StreamingResponse:
    is_live = session_check(
        session_id=api_session.session_id,
        analyst_id=api_session.analyst.id,
        kind=SessionKind.API,
    )
    return StreamingResponse(
        while_live(event_stream(request), is_live),  # ends soon after the token is revoked
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
