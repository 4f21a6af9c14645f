"""Long-lived responses (SSE) that end when the session that opened them is revoked."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from api.analysts.models import SessionKind
from api.analysts.sessions import get_session_analyst
from api.db import unit_of_work

# How stale a stream's authorization may get: at most this long after a logout, a password
# change or a deactivation, the stream sends nothing more (every stream sends at least a
# heartbeat every 15 s, so the check runs at least that often).
SESSION_CHECK_SECONDS = 10.0

Frame = TypeVar("Frame")


def session_check(
    *, session_id: str, analyst_id: int, kind: SessionKind
) -> Callable[[], Awaitable[bool]]:
    """Whether the session is still live, in a short transaction of its own (the request's
    session is closed before a stream starts)."""

    async def is_live() -> bool:
        async with unit_of_work() as session:
            analyst = await get_session_analyst(
                session, session_id=session_id, analyst_id=analyst_id, kind=kind
            )
            return analyst is not None

    return is_live


async def while_live(
    frames: AsyncIterator[Frame],
    is_live: Callable[[], Awaitable[bool]],
    *,
    every: float | None = None,
) -> AsyncIterator[Frame]:
    """Pass `frames` on, re-checking `is_live` before a frame when `every` seconds have passed
    since the last check; end the stream once it is not."""
    interval = SESSION_CHECK_SECONDS if every is None else every
    checked = time.monotonic()
    try:
        async for frame in frames:
            if time.monotonic() - checked >= interval:
                if not await is_live():
                    return
                checked = time.monotonic()
            yield frame
    finally:
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()
