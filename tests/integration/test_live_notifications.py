"""Live panel notifications are one durable consumer of the event stream: `message.new` has one
shape whoever wrote the message (infringer, bot, analyst), published once, after commit."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from api.conversations.models import Conversation
from api.db import unit_of_work
from api.engine.turns import process_conversation
from api.handoff.service import do_claim, do_send_analyst_message
from api.notifications.bus import get_bus
from tests.integration.test_events_capture import (
    ReadingGateway,
    an_analyst,
    inbound,
    whatsapp_case,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


async def test_message_new_has_one_shape_for_infringer_bot_and_analyst() -> None:
    conversation_id, case_id, phone = await whatsapp_case()
    received: list[dict[str, Any]] = []
    got_three = asyncio.Event()

    async def listen() -> None:
        async for event in get_bus().subscribe():
            if event.get("type") == "message.new" and event.get("conversation_id") == (
                conversation_id
            ):
                received.append(event)
                if len(received) == 3:
                    got_three.set()

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)  # the subscription is registered
    try:
        async with unit_of_work() as session:
            from api.conversations.inbound import do_receive_message

            await do_receive_message(session, inbound(phone, "oi"))
        await process_conversation(conversation_id, gateway=ReadingGateway())  # type: ignore[arg-type]
        ana = await an_analyst()
        async with unit_of_work() as session:
            await do_claim(session, conversation_id=conversation_id, analyst=ana)
        async with unit_of_work() as session:
            await do_send_analyst_message(
                session, conversation_id=conversation_id, analyst=ana, text="Bom dia!"
            )
        try:
            await asyncio.wait_for(got_three.wait(), timeout=10)
        except TimeoutError:
            raise AssertionError(f"got {received}") from None
    finally:
        listener.cancel()
    shapes = {tuple(sorted(event)) for event in received}
    assert shapes == {
        (
            "actor_kind",
            "case_id",
            "channel",
            "conversation_id",
            "direction",
            "event_id",
            "kind",
            "message_id",
            "occurred_at",
            "type",
        )
    }
    assert [(e["direction"], e["actor_kind"], e["kind"]) for e in received] == [
        ("inbound", "infringer", "message.received"),
        ("outbound", "bot", "message.sent"),
        ("outbound", "analyst", "message.sent"),
    ]
    assert {e["case_id"] for e in received} == {case_id}
    assert len({e["event_id"] for e in received}) == 3  # each published once
    async with unit_of_work() as session:
        assert await session.get(Conversation, conversation_id) is not None
