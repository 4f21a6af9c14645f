"""Alerts live to the panel: a durable consumer that publishes alert.raised / alert.updated on
the notification bus (the same transport as api/notifications/live.py), inline after the
commit that raised them, so an open panel hears of a new alert well within a second.

Published shape:
    {"type": "alert.raised" | "alert.changed", "event_id": 12, "kind": "alert.raised",
     "alert": "infringer_replied", "alert_id": 7, "case_id": 3, "conversation_id": 5,
     "recipient_id": 2, "to_supervisors": false, "state": "open", "title": "…",
     "occurred_at": "…"}
The browser only uses it as a cue to refetch its own count and list (the server filters what
each analyst sees), so nothing private travels on it beyond ids and the alert's title.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.events import kinds as k
from api.events.consumers import Consumer, register_consumer
from api.events.service import EventRecord
from api.notifications.bus import get_bus

NAME = "live-alerts"


def alert_payload(record: EventRecord) -> dict[str, Any] | None:
    event = record.event
    base: dict[str, Any] = {
        "event_id": f"alert-{record.id}",
        "kind": event.kind,
        "case_id": event.case_id,
        "conversation_id": event.conversation_id,
        "occurred_at": event.occurred_at.isoformat(),
    }
    if isinstance(event, k.AlertRaised):
        return {
            "type": "alert.raised",
            **base,
            "alert": event.alert,
            "alert_id": event.detail.get("alert_id"),
            "recipient_id": event.detail.get("recipient_id"),
            "to_supervisors": bool(event.detail.get("to_supervisors")),
            "state": "open",
            "title": event.detail.get("title"),
        }
    if isinstance(event, k.AlertUpdated):
        return {
            "type": "alert.changed",
            **base,
            "alert": event.alert,
            "alert_id": event.alert_id,
            "state": event.state,
        }
    return None


async def publish_alert(_session: AsyncSession, record: EventRecord) -> None:
    payload = alert_payload(record)
    if payload is not None:
        await get_bus().publish(payload)


LIVE_ALERTS = register_consumer(
    Consumer(
        name=NAME,
        handle=publish_alert,
        kinds=frozenset({k.AlertRaised.kind, k.AlertUpdated.kind}),
        batch_size=200,
        start_at_head=False,  # the migration put its cursor at the head of the stream
        inline=True,
    )
)
