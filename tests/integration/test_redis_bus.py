import asyncio

import pytest

from api.notifications.bus import RedisBus

pytestmark = pytest.mark.integration


async def test_an_event_published_by_one_process_reaches_another(redis_url: str) -> None:
    publisher, subscriber = RedisBus(redis_url), RedisBus(redis_url)
    stream = subscriber.subscribe()
    first = asyncio.ensure_future(stream.__anext__())
    # Publish until the subscription is live (subscribe happens inside the first __anext__).
    for attempt in range(50):
        await publisher.publish({"type": "handoff.requested", "conversation_id": attempt})
        done, _ = await asyncio.wait({first}, timeout=0.1)
        if done:
            break
    event = first.result()
    assert event["type"] == "handoff.requested"
    await stream.aclose()
