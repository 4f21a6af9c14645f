"""Live panel notifications as a durable event consumer: what browsers are told, and when.

After an event commits, this consumer publishes it on the notification bus (Redis pub/sub or
in-process) in ONE shape, whatever the service that emitted it:

    {"type": "message.new" | "handoff.requested" | "conversation.claimed"
             | "conversation.released" | "conversation.resolved",
     "event_id": 123, "kind": "message.received", "conversation_id": 7, "case_id": 3,
     "channel": "whatsapp", "actor_kind": "infringer", "occurred_at": "…", ...kind fields}

message.new carries "direction" ("inbound" | "outbound") and "message_id"; the handoff types
carry "holder" (the holder it left the conversation with), handoff.requested its "reason",
conversation.claimed the "analyst_id". A publish may repeat after a crash (at least once):
drop a repeated event_id.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.events import kinds as k
from api.events.consumers import Consumer, register_consumer
from api.events.service import EventRecord

NAME = "live-notifications"


def live_payload(record: EventRecord) -> dict[str, Any] | None:
    """The published form of an event, or None for kinds browsers are not told about."""
    event = record.event
    base: dict[str, Any] = {
        "event_id": record.id,
        "kind": event.kind,
        "conversation_id": event.conversation_id,
        "case_id": event.case_id,
        "channel": event.channel,
        "actor_kind": str(event.actor_kind),
        "occurred_at": event.occurred_at.isoformat(),
    }
    if isinstance(event, k.MessageReceived):
        return {
            "type": "message.new",
            **base,
            "direction": "inbound",
            "message_id": event.message_id,
        }
    if isinstance(event, k.MessageSent):
        return {
            "type": "message.new",
            **base,
            "direction": "outbound",
            "message_id": event.message_id,
        }
    if isinstance(event, k.HandoffRequested):
        return {
            "type": "handoff.requested",
            **base,
            "holder": "waiting_human",
            "reason": event.reason,
        }
    if isinstance(event, k.HandoffClaimed):
        return {
            "type": "conversation.claimed",
            **base,
            "holder": "human",
            "analyst_id": event.analyst_id,
        }
    if isinstance(event, k.HandoffReleased):
        return {"type": "conversation.released", **base, "holder": "bot"}
    if isinstance(event, k.HandoffResolved):
        return {"type": "conversation.resolved", **base, "holder": "bot"}
    return None


LIVE_KINDS = frozenset(
    {
        k.MessageReceived.kind,
        k.MessageSent.kind,
        k.HandoffRequested.kind,
        k.HandoffClaimed.kind,
        k.HandoffReleased.kind,
        k.HandoffResolved.kind,
    }
)


async def publish_live(_session: AsyncSession, record: EventRecord) -> None:
    from api.notifications.bus import get_bus

    payload = live_payload(record)
    if payload is not None:
        # Raising here rolls the batch back: it is published again once the bus is back.
        await get_bus().publish(payload)


LIVE = register_consumer(
    Consumer(
        name=NAME,
        handle=publish_live,
        kinds=LIVE_KINDS,
        batch_size=200,
        start_at_head=True,
        inline=True,
    )
)
