"""What the outbox worker needs from a channel: turn an envelope into a provider message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from api.conversations.models import Channel, DeliveryStatus


@dataclass(frozen=True)
class Envelope:
    """One outbound message as the channel sender sees it."""

    message_id: int
    conversation_id: int
    channel: Channel
    to: str
    text: str
    # Our own address to send from, when the conversation says which (the number they wrote to).
    sender: str | None = None
    subject: str | None = None
    content_sid: str | None = None
    content_variables: dict[str, str] | None = None
    attachments: list[dict[str, str]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SendResult:
    provider_id: str
    status: DeliveryStatus = DeliveryStatus.SENT


class ChannelSender(Protocol):
    """A provider adapter. Raise api.errors.ChannelDeliveryError(retryable=...) on failure."""

    channel: Channel

    async def send(self, envelope: Envelope) -> SendResult: ...
