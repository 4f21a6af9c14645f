"""The worker's runner drains, on a commit's wake-up, the consumers that read the kinds that
commit emitted (api.events.consumers.run_event_consumers), and the inline ones only when the
committing process did not drain them itself; a wake-up that does not say which kinds, the
first round and every poll drain them all. Over Redis the kinds travel with the wake-up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.db import get_engine
from api.events import consumers
from api.events.consumers import Consumer, run_event_consumers, wake_committed
from api.events.service import EventRecord

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


async def _nothing(_session: AsyncSession, _record: EventRecord) -> None:
    return None


ALERTS = Consumer(name="wakes-alerts", handle=_nothing, kinds=frozenset({"alert.raised"}))
LIVE = Consumer(name="wakes-live", handle=_nothing, kinds=frozenset({"alert.raised"}), inline=True)
MESSAGES = Consumer(name="wakes-messages", handle=_nothing, kinds=frozenset({"message.sent"}))
EVERYTHING = Consumer(name="wakes-everything", handle=_nothing)


class Rounds:
    def __init__(self) -> None:
        self.rounds: list[set[str]] = [set()]
        self.changed = asyncio.Event()

    async def drain(self, consumer: Consumer, **_: object) -> int:
        self.rounds[-1].add(consumer.name)
        self.changed.set()
        return 0

    async def next_round(self) -> set[str]:
        """The consumers the next round drained, once it drained any."""
        self.rounds.append(set())
        self.changed.clear()
        await asyncio.wait_for(self.changed.wait(), timeout=10)
        await asyncio.sleep(0)  # the round's other drains (none of them waits)
        return self.rounds[-1]


@pytest.fixture
async def rounds(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rounds]:
    recorder = Rounds()
    monkeypatch.setattr(consumers, "drain", recorder.drain)
    monkeypatch.setattr(consumers, "RUNNER_LINGER_SECONDS", 0.0)
    monkeypatch.setattr(consumers, "_redis", lambda: None)  # this process's wake-ups only
    yield recorder


async def test_a_round_drains_the_consumers_of_the_kinds_committed(rounds: Rounds) -> None:
    stop = asyncio.Event()
    everyone = {ALERTS.name, LIVE.name, MESSAGES.name, EVERYTHING.name}
    runner = asyncio.create_task(
        run_event_consumers(stop, poll_seconds=600, consumers=[ALERTS, LIVE, MESSAGES, EVERYTHING])
    )
    try:
        await asyncio.wait_for(rounds.changed.wait(), timeout=10)
        await asyncio.sleep(0)
        assert rounds.rounds[0] == everyone  # the first round
        # A commit whose process drained no inline consumer (no engine): those too.
        waiting = asyncio.ensure_future(rounds.next_round())
        await asyncio.sleep(0)
        await wake_committed(None, frozenset({"alert.raised"}))
        assert await waiting == {ALERTS.name, LIVE.name, EVERYTHING.name}
        # A commit on this process's engine: it drained its inline consumers itself.
        waiting = asyncio.ensure_future(rounds.next_round())
        await asyncio.sleep(0)
        await wake_committed(get_engine(), frozenset({"alert.raised"}))
        assert await waiting == {ALERTS.name, EVERYTHING.name}
        waiting = asyncio.ensure_future(rounds.next_round())
        await asyncio.sleep(0)
        await wake_committed(None, frozenset({"message.sent", "case.note_added"}))
        assert await waiting == {MESSAGES.name, EVERYTHING.name}
        # A wake-up that does not say which kinds: everyone.
        waiting = asyncio.ensure_future(rounds.next_round())
        await asyncio.sleep(0)
        await wake_committed(None)
        assert await waiting == everyone
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)


async def test_the_poll_drains_everyone(rounds: Rounds) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(
        run_event_consumers(stop, poll_seconds=0.05, consumers=[ALERTS, LIVE, MESSAGES])
    )
    try:
        await asyncio.wait_for(rounds.changed.wait(), timeout=10)
        assert await rounds.next_round() == {ALERTS.name, LIVE.name, MESSAGES.name}
    finally:
        stop.set()
        await asyncio.wait_for(runner, timeout=10)


def test_the_kinds_travel_with_a_wake_up_over_redis() -> None:
    kinds = frozenset({"message.sent", "alert.raised"})
    for done in (True, False):
        message = consumers._wake_message(kinds, inline_done=done)
        assert consumers._read_wake_message(message.encode()) == (set(kinds), done)
    # An older process's "1", or a wake-up without kinds: unknown, so everyone is due.
    assert consumers._read_wake_message(b"1") == (None, False)
    empty = consumers._wake_message(frozenset(), inline_done=True)
    assert consumers._read_wake_message(empty) == (None, True)


def test_kinds_gather_until_the_runner_takes_them() -> None:
    waker = consumers._Waker()
    waker.wake({"a"}, inline_done=True)
    waker.wake({"b"}, inline_done=True)
    assert waker.event.is_set()
    assert waker.take() == consumers._Due(kinds={"a", "b"}, inline=False)
    assert not waker.event.is_set()
    waker.wake({"a"}, inline_done=True)
    waker.wake({"b"})  # a process that did not drain its inline consumers
    assert waker.take() == consumers._Due(kinds={"a", "b"}, inline=True)
    waker.wake({"a"}, inline_done=True)
    waker.wake(None, inline_done=True)
    assert waker.take() == consumers._EVERYONE  # one commit did not say: everyone
    assert waker.take() == consumers._Due(kinds=set(), inline=False)
