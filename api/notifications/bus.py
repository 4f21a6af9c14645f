"""The event bus: Redis pub/sub across processes, or an in-process fallback without Redis.

Services do not publish here: they emit domain events (api/events), and the live-notifications
consumer (api/notifications/live.py) publishes them, in one shape, after they commit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any, Protocol

from api.config import get_settings, redis_channel

log = logging.getLogger(__name__)
CHANNEL = "tratativa:events"


class EventBus(Protocol):
    async def publish(self, event: dict[str, Any]) -> None: ...

    def subscribe(self) -> AsyncIterator[dict[str, Any]]: ...


class MemoryBus:
    """One process: every subscriber gets its own queue."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[dict[str, Any]]] = set()

    async def publish(self, event: dict[str, Any]) -> None:
        for queue in list(self._queues):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)


class RedisBus:
    """Several processes: an event raised in one reaches browsers connected to another."""

    def __init__(self, url: str) -> None:
        from redis.asyncio import Redis

        self._redis = Redis.from_url(url)
        self._channel = redis_channel(url, CHANNEL)

    async def publish(self, event: dict[str, Any]) -> None:
        await self._redis.publish(self._channel, json.dumps(event, default=str))

    async def subscribe(self) -> AsyncIterator[dict[str, Any]]:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(self._channel)
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    yield json.loads(item["data"])
        finally:
            await pubsub.unsubscribe(self._channel)
            await pubsub.aclose()  # type: ignore[no-untyped-call]


@lru_cache(maxsize=1)
def get_bus() -> EventBus:
    url = get_settings().redis_url
    return RedisBus(url) if url else MemoryBus()
