"""The one adapter protocol every WhatsApp provider package implements: verify / parse / send /
statuses (statuses come out of `parse`, beside the messages of the same webhook).

An adapter only reads and writes its provider's wire format; storing, idempotency, the
conversation's number and the timeline are `numbers.webhooks`' and the pipeline's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from api.channels.numbers.models import Provider
from api.channels.numbers.service import NumberConfig
from api.conversations.inbound import InboundAttachment
from api.conversations.models import DeliveryStatus
from api.errors import AppError
from api.outbox.senders import Envelope, SendResult

# Meta's code for a free-form message outside the 24-hour customer-service window
# (https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
OUTSIDE_WINDOW_CODE = "131047"
OUTSIDE_WINDOW_TEXT = (
    "fora da janela de 24 horas do WhatsApp: a mensagem livre não foi entregue; "
    "só um modelo aprovado reabre a conversa"
)


class MalformedPayload(AppError):
    """Authenticated, but not something the provider would send."""

    code = "malformed_webhook"
    status_code = 400


@dataclass(frozen=True)
class MediaItem:
    """A file the provider only referenced: fetched after the webhook is acknowledged."""

    source_url: str
    content_type: str | None = None
    filename: str | None = None


@dataclass(frozen=True)
class ProviderMessage:
    external_id: str  # the provider's id: wamid, Z-API messageId, UltraMsg id
    sender: str  # the infringer, E.164
    text: str
    to: str | None  # our number, E.164
    account_id: str | None = None  # our number's id at the provider (phone-number id, instance)
    media: tuple[MediaItem, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    answerable: bool = True


@dataclass(frozen=True)
class ProviderStatus:
    provider_id: str
    status: DeliveryStatus
    error_code: str | None = None
    error: str | None = None
    # Our message id, when the provider echoes a reference we gave it (UltraMsg referenceId).
    message_id: int | None = None


@dataclass
class ParsedWebhook:
    messages: list[ProviderMessage] = field(default_factory=list)
    statuses: list[ProviderStatus] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    # The provider accounts (instances) the webhook speaks for, when its payload names them.
    accounts: set[str] = field(default_factory=set)


class WhatsAppAdapter(Protocol):
    provider: Provider

    def verify(self, *, body: bytes, headers: Mapping[str, str], path_secret: str | None) -> bool:
        """Whether the request is the provider's (signature, or our secrets), before parsing."""
        ...

    def parse(self, body: bytes) -> ParsedWebhook:
        """The messages and delivery statuses of one webhook; MalformedPayload when unreadable."""
        ...

    async def send(self, envelope: Envelope, number: NumberConfig) -> SendResult:
        """Send one outbox message from `number`; ChannelDeliveryError(retryable=…) on refusal."""
        ...

    async def download(
        self,
        http: httpx.AsyncClient,
        item: MediaItem,
        *,
        number: NumberConfig,
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        """Fetch a referenced file; failures come back as refusals (retryable or not)."""
        ...


def error_text(code: str | None, message: str | None) -> str | None:
    """How a provider's error reads on the timeline (131047 says what it means)."""
    if code == OUTSIDE_WINDOW_CODE:
        return f"{code}: {OUTSIDE_WINDOW_TEXT}"
    if code and message:
        return f"{code}: {message}"
    return code or message


def timestamp(value: str | int | float | None) -> dt.datetime | None:
    """A provider's Unix timestamp (seconds or milliseconds) as UTC."""
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number > 10_000_000_000:  # milliseconds
        number /= 1000
    try:
        return dt.datetime.fromtimestamp(number, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return None


def plus(phone: str) -> str:
    """WhatsApp ids ("5511…", "5511…@c.us") as E.164."""
    digits = phone.split("@", 1)[0].strip()
    return digits if digits.startswith("+") else "+" + digits


def bare(phone: str) -> str:
    """E.164 as the providers want it: digits only."""
    return "".join(ch for ch in phone if ch.isdigit())


MEDIA_LABELS = (
    ("image/webp", "figurinha"),
    ("image/", "imagem"),
    ("audio/", "áudio"),
    ("video/", "vídeo"),
    ("application/pdf", "documento"),
)


def media_label(content_type: str | None, kind: str | None = None) -> str:
    lowered = (content_type or "").lower()
    for prefix, label in MEDIA_LABELS:
        if lowered.startswith(prefix):
            return label
    return {"image": "imagem", "audio": "áudio", "video": "vídeo", "sticker": "figurinha"}.get(
        kind or "", "documento" if kind == "document" else "arquivo"
    )
