"""The SSE transport (api/notifications/stream.py) keeps memory bounded per subscriber: a client
that falls `QUEUE_SIZE` events behind is dropped (its browser reconnects and resyncs), never
buffered for."""

from __future__ import annotations

import asyncio
import json

import pytest
from sse_starlette import ServerSentEvent

from api.notifications import stream
from api.notifications.bus import MemoryBus

pytestmark = pytest.mark.unit


async def collect(frames: object) -> list[ServerSentEvent]:
    return [frame async for frame in frames]  # type: ignore[attr-defined]


async def test_a_subscriber_that_falls_behind_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    bus = MemoryBus()
    monkeypatch.setattr(stream, "get_bus", lambda: bus)
    monkeypatch.setattr(stream, "QUEUE_SIZE", 5)
    frames = stream.event_frames(announce_ready=True)
    connected = await anext(frames)
    ready = await anext(frames)
    assert connected.comment == "connected"
    assert ready.event == "ready" and json.loads(str(ready.data)) == {"live": True}

    for number in range(50):  # the client reads nothing meanwhile
        await bus.publish({"type": "message.new", "number": number})
    rest = await asyncio.wait_for(collect(frames), timeout=5)

    delivered = [json.loads(str(f.data))["number"] for f in rest if f.event == "message.new"]
    assert delivered == list(range(len(delivered)))  # in order, no gaps before the drop
    assert len(delivered) <= 5


async def test_a_client_that_keeps_up_gets_every_event_and_no_private_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus = MemoryBus()
    monkeypatch.setattr(stream, "get_bus", lambda: bus)
    monkeypatch.setattr(stream, "QUEUE_SIZE", 5)
    frames = stream.event_frames(announce_ready=True)
    assert (await anext(frames)).comment == "connected"
    assert (await anext(frames)).event == "ready"  # subscribed: nothing published is missed
    received = []
    for number in range(20):
        await bus.publish({"type": "panel.stream_probe", "nonce": "someone else's"})
        await bus.publish({"type": "handoff.requested", "number": number})
        frame = await asyncio.wait_for(anext(frames), timeout=5)
        received.append((frame.event, json.loads(str(frame.data))["number"]))
    await frames.aclose()
    assert received == [("handoff.requested", n) for n in range(20)]


async def test_a_quiet_stream_sends_heartbeats(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "get_bus", MemoryBus)
    monkeypatch.setattr(stream, "HEARTBEAT_SECONDS", 0.01)
    frames = stream.event_frames(announce_ready=False)
    await anext(frames)
    beats = [await asyncio.wait_for(anext(frames), timeout=5) for _ in range(3)]
    await frames.aclose()
    assert [b.comment for b in beats] == ["heartbeat"] * 3
    assert all(b.encode().startswith(b": heartbeat\n") for b in beats)


async def test_an_event_published_twice_is_forwarded_once_with_its_id(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bus = MemoryBus()
    monkeypatch.setattr(stream, "get_bus", lambda: bus)
    frames = stream.event_frames(announce_ready=True)
    await anext(frames)
    await anext(frames)
    for event_id in (7, 7, 8, 7):
        await bus.publish({"type": "message.new", "event_id": event_id})
    await bus.publish({"type": "message.new"})  # no id: always forwarded
    got = [await asyncio.wait_for(anext(frames), timeout=5) for _ in range(3)]
    await frames.aclose()
    assert [f.id for f in got] == ["7", "8", None]
    assert got[0].encode().startswith(b"id: 7\nevent: message.new\ndata: ")
