"""A consumer process for the crash test: handles `alert.raised` events of one run, writing one
effect row per event in the consumer's transaction and printing `handled <id>` before the
commit; after `freeze_after` events it stops dead (blocked) so the test can SIGKILL it with a
batch half done.

    python -m tests.helpers.crash_consumer <database url> <consumer name> <freeze after>
"""

from __future__ import annotations

import asyncio
import sys

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.db import make_engine
from api.events.consumers import Consumer, drain
from api.events.service import EventRecord

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS consumer_effects ("
    "consumer VARCHAR(80) NOT NULL, event_id BIGINT NOT NULL)"
)


def effect_consumer(name: str, *, on_handled: object = None, batch_size: int = 5) -> Consumer:
    async def handle(session: AsyncSession, record: EventRecord) -> None:
        await session.execute(
            sa.text("INSERT INTO consumer_effects (consumer, event_id) VALUES (:c, :e)"),
            {"c": name, "e": record.id},
        )
        if callable(on_handled):
            on_handled(record)

    return Consumer(
        name=name, handle=handle, kinds=frozenset({"alert.raised"}), batch_size=batch_size
    )


async def main(url: str, name: str, freeze_after: int) -> None:
    engine = make_engine(url)
    maker = async_sessionmaker(engine, expire_on_commit=False)
    handled = 0

    def on_handled(record: EventRecord) -> None:
        nonlocal handled
        handled += 1
        print(f"handled {record.id}", flush=True)
        if handled >= freeze_after:
            sys.stdin.readline()  # blocks the whole process: the test kills it here

    await drain(effect_consumer(name, on_handled=on_handled), maker=maker)
    print("drained", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
