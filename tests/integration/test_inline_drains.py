"""Inline consumers coalesced per process, and the bot loop's two transactions per turn: every
event is still handled once and seen by the committer that waited for it; every message that
arrives while a conversation's turns run is answered exactly once, none left waiting."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
import weakref
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.config import get_settings
from api.conversations.models import Conversation, Direction, Message
from api.db import get_engine, unit_of_work
from api.engine import dispatch
from api.engine.client import BotMessage, EngineTurn, NluReading
from api.engine.turns import process_conversation
from api.events import consumers, emit
from api.events import kinds as ev
from api.events.consumers import (
    Consumer,
    drain,
    drain_shared,
    inline_drains_in_background,
    register_consumer,
    run_consumer_once,
    unregister_consumer,
    wait_for_inline_drains,
)
from api.events.models import EventConsumer, StoredEvent
from api.events.service import EventRecord
from tests.fixtures.twilio.harness import eventually
from tests.integration.test_pipeline import case_with_phone, receive

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


class Recorder:
    """An inline consumer of this test's alert.raised events: which it handled, how often."""

    def __init__(self) -> None:
        self.run = f"drains-{uuid.uuid4().hex[:8]}"
        self.handled: Counter[int] = Counter()
        self.consumer = Consumer(
            name=self.run,
            handle=self.handle,
            kinds=frozenset({ev.AlertRaised.kind}),
            start_at_head=True,
            inline=True,
        )

    async def handle(self, _session: AsyncSession, record: EventRecord) -> None:
        event = record.event
        if isinstance(event, ev.AlertRaised) and event.alert == self.run:
            self.handled[record.id] += 1

    async def emit_one(self, n: int) -> int:
        async with unit_of_work() as session:
            emit(
                session,
                ev.AlertRaised(actor_kind=ev.EventActorKind.RULE, alert=self.run, detail={"n": n}),
            )
        async with unit_of_work() as session:
            event_id = await session.scalar(
                sa.select(StoredEvent.id).where(
                    StoredEvent.kind == ev.AlertRaised.kind,
                    StoredEvent.payload["detail"]["n"].as_integer() == n,
                    StoredEvent.payload["alert"].as_string() == self.run,
                )
            )
        assert event_id is not None
        return int(event_id)


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    found = Recorder()
    await run_consumer_once(found.consumer)  # its cursor starts at the head of the stream
    register_consumer(found.consumer)
    yield found
    unregister_consumer(found.consumer.name)
    await wait_for_inline_drains()


async def test_concurrent_commits_share_passes_and_each_sees_its_event_handled(
    recorder: Recorder,
) -> None:
    async def commit_and_check(n: int) -> int:
        event_id = await recorder.emit_one(n)
        # The committer waited for a pass that started after its commit.
        assert recorder.handled[event_id] == 1
        return event_id

    ids = await asyncio.gather(*(commit_and_check(n) for n in range(20)))
    await wait_for_inline_drains()
    assert sorted(recorder.handled) == sorted(ids)
    assert set(recorder.handled.values()) == {1}


async def test_in_the_background_the_commit_does_not_wait_but_the_event_is_handled(
    recorder: Recorder,
) -> None:
    with inline_drains_in_background():
        event_id = await recorder.emit_one(0)
    await wait_for_inline_drains()
    assert recorder.handled[event_id] == 1


async def test_background_commits_of_a_moment_share_one_pass(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    passes = 0
    original = consumers._drain

    async def counted_drain(
        consumer: Consumer, **kwargs: object
    ) -> tuple[int, bool, tuple[int, int] | None]:
        nonlocal passes
        if consumer.name == recorder.run:
            passes += 1
        return await original(consumer, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(consumers, "_drain", counted_drain)
    monkeypatch.setattr(consumers, "LINGER_SECONDS", 0.5)
    with inline_drains_in_background():
        ids = await asyncio.gather(*(recorder.emit_one(n) for n in range(8)))
    await wait_for_inline_drains()
    assert sorted(recorder.handled) == sorted(ids)
    assert set(recorder.handled.values()) == {1}
    # Eight commits in a row, nobody waiting: far fewer passes than commits.
    assert passes < len(ids)


async def test_a_pass_that_found_the_cursor_held_tries_again_once_it_is_free(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another pass (the worker's runner, another service process) holds the consumer's cursor
    when a commit's inline pass comes: that pass skips, and the event must still be handled once
    the cursor is free, with no later commit and no worker to bring it."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks (SKIP LOCKED) are PostgreSQL's; SQLite serializes writers")
    # The lock below is an older transaction still running, which holds the event back from
    # the other inline consumers' passes too, and it ends only after the commit returns: the
    # commit is not to wait for it (that wait is the next test's subject).
    monkeypatch.setattr(consumers, "HELD_WAIT_SECONDS", 0.0)
    async with engine.connect() as holder:
        await holder.execute(
            sa.select(EventConsumer.name)
            .where(EventConsumer.name == recorder.run)
            .with_for_update()
        )
        event_id = await recorder.emit_one(0)  # its pass found the cursor locked
        assert recorder.handled[event_id] == 0
        await holder.rollback()  # the other pass ends

    async def handled() -> bool:
        return recorder.handled[event_id] == 1

    assert await eventually(handled, timeout=10.0)
    await wait_for_inline_drains()
    assert recorder.handled[event_id] == 1


async def test_a_commit_behind_an_older_running_transaction_waits_until_its_event_is_handled(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older transaction still running holds the stream's horizon below a newer commit: the
    pass that commit waits for cannot read its event yet. The committer keeps waiting until a
    pass can (here: once the older transaction commits), instead of returning with its event
    unhandled (seen in CI: 20 concurrent commits, one returned before its event was handled)."""
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        pytest.skip("the horizon of transactions still running is PostgreSQL's")
    monkeypatch.setattr(consumers, "HELD_WAIT_SECONDS", 600.0)
    async with engine.connect() as older:
        await older.execute(sa.text("SELECT pg_current_xact_id()"))  # takes its id first
        committer = asyncio.create_task(recorder.emit_one(0))

        async def committed() -> bool:
            async with unit_of_work() as session:
                found = await session.scalar(
                    sa.select(sa.func.count())
                    .select_from(StoredEvent)
                    .where(StoredEvent.payload["alert"].as_string() == recorder.run)
                )
            return bool(found)

        assert await eventually(committed, timeout=30.0)
        assert not committer.done()  # its event is committed, but held back: it waits
        await older.commit()
        event_id = await asyncio.wait_for(committer, timeout=60)
    assert recorder.handled[event_id] == 1
    await wait_for_inline_drains()
    assert recorder.handled[event_id] == 1


async def test_a_pass_somebody_waits_for_does_not_linger(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "LINGER_SECONDS", 3600.0)
    with inline_drains_in_background():
        event_id = await recorder.emit_one(0)  # its pass would linger for an hour
    # Somebody waits (a bot turn catching up): the pass starts now and handles the event.
    await asyncio.wait_for(drain_shared(recorder.consumer), timeout=30)
    assert recorder.handled[event_id] == 1
    # The other inline consumers' passes for that commit are lingering too: asking each for a
    # pass ends its linger at once.
    for consumer in consumers.get_consumers():
        if consumer.inline:
            await asyncio.wait_for(drain_shared(consumer), timeout=30)
    await asyncio.wait_for(wait_for_inline_drains(), timeout=30)


class ScriptedGateway:
    """Answers every turn with one reply naming the message; new messages arrive meanwhile."""

    def __init__(self, phone: str, arrivals: int) -> None:
        self.phone = phone
        self.arrivals = arrivals
        self.turns: list[str] = []

    async def send_turn(self, *, message_id: str, text: str, **_: object) -> EngineTurn:
        self.turns.append(message_id)
        if self.arrivals > 0:  # the infringer writes again while the bot thinks
            self.arrivals -= 1
            await receive(self.phone, f"de novo {self.arrivals}", f"SM{uuid.uuid4().hex}")
        return EngineTurn(
            messages=[BotMessage(text=f"resposta a {message_id}")],
            nlu=NluReading(intent="greet", confidence=0.9),
            paused=False,
        )

    async def send_events(self, **_: object) -> bool:
        return False


async def test_messages_arriving_during_turns_are_each_answered_once() -> None:
    _, phone = await case_with_phone()
    _, conversation_id, _ = await receive(phone, "oi", f"SM{uuid.uuid4().hex}")
    gateway = ScriptedGateway(phone, arrivals=4)
    # Several processes try at once; one holds the lease and runs every turn, the late
    # arrivals included, then gives the lease back with nothing left.
    handled = await asyncio.gather(
        *(process_conversation(conversation_id, gateway=gateway) for _ in range(3))  # type: ignore[arg-type]
    )
    assert sum(handled) == 5
    async with unit_of_work() as session:
        inbound = list(
            await session.scalars(
                sa.select(Message).where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.INBOUND,
                )
            )
        )
        replies = list(
            await session.scalars(
                sa.select(Message.text).where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.OUTBOUND,
                )
            )
        )
        conversation = await session.get(Conversation, conversation_id)
    assert len(inbound) == 5 and all(m.handled_at is not None for m in inbound)
    assert sorted(replies) == sorted(f"resposta a msg-{m.id}" for m in inbound)
    assert sorted(gateway.turns) == sorted(f"msg-{m.id}" for m in inbound)
    assert conversation is not None and conversation.turn_lease_token is None
    # Nothing left: a new attempt finds no turn to run.
    assert await process_conversation(conversation_id, gateway=gateway) == 0  # type: ignore[arg-type]


class GatedGateway:
    """Holds every turn until released; counts how many are inside Rasa at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.release = asyncio.Event()

    async def send_turn(self, **_: object) -> EngineTurn:
        self.inside += 1
        self.most = max(self.most, self.inside)
        await self.release.wait()
        self.inside -= 1
        return EngineTurn(messages=[], nlu=NluReading(intent="greet", confidence=0.9), paused=False)

    async def send_events(self, **_: object) -> bool:
        return True


async def test_a_process_runs_at_most_its_turn_slots_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above capacity the turns wait for a slot (TURNS_PER_PROCESS) instead of all running at
    once; every one still runs, once."""
    settings = get_settings().model_copy(update={"turns_per_process": 2})
    monkeypatch.setattr(dispatch, "get_settings", lambda: settings)
    monkeypatch.setattr(dispatch, "_slots", weakref.WeakKeyDictionary())
    gateway = GatedGateway()
    monkeypatch.setattr(dispatch, "get_gateway", lambda: gateway)
    conversations = []
    for n in range(5):
        _, phone = await case_with_phone()
        _, conversation_id, _ = await receive(phone, f"oi {n}", f"SM{uuid.uuid4().hex}")
        conversations.append(conversation_id)

    runs = [
        asyncio.create_task(dispatch.run_turns_and_deliver(conversation_id))
        for conversation_id in conversations
    ]
    slots = dispatch._turn_slots()

    async def two_inside_three_waiting() -> bool:
        return gateway.inside == 2 and len(slots._waiters or ()) == 3

    assert await eventually(two_inside_three_waiting, timeout=30)
    gateway.release.set()
    assert await asyncio.gather(*runs) == [1] * 5
    assert gateway.most == 2


async def test_an_inline_pass_leaves_a_long_backlog_to_the_workers_runner(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events written while nothing consumed them (the worker stopped, an import): the first
    commit that wakes the inline consumer handles at most INLINE_MAX_BATCHES batches while its
    caller waits, and the worker's runner (drain) takes the rest, each event once."""
    monkeypatch.setattr(consumers, "INLINE_MAX_BATCHES", 2)
    small = dataclasses.replace(recorder.consumer, batch_size=3)
    unregister_consumer(recorder.consumer.name)
    backlog = [await recorder.emit_one(n) for n in range(10)]
    assert not recorder.handled  # nothing consumed them
    register_consumer(small)

    await drain_shared(small)  # a pass somebody waits for

    assert len(recorder.handled) == 2 * 3
    assert await drain(small) == 10 - 2 * 3
    assert sorted(recorder.handled) == sorted(backlog)
    assert set(recorder.handled.values()) == {1}
