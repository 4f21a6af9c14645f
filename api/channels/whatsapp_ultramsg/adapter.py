"""UltraMsg: message_received / message_ack webhooks, sends through
/{instance}/messages/{chat,image,document,audio,video} with the instance token.

https://docs.ultramsg.com/api/post/messages/chat
UltraMsg signs nothing: a webhook is taken only at /webhooks/ultramsg/{ULTRAMSG_WEBHOOK_SECRET}
and for an instance we know (checked against our numbers after parsing). Acks name the
message by WhatsApp's id, not the id the send returned: each send carries our message id as
`referenceId`, which the acks echo. Unofficial: risk of ban, no template approval (a template
goes as its text), the 24-hour rule still applied by us.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from api.channels.numbers.http import LoopClient, json_of, refusal, request
from api.channels.numbers.media import fetch_file
from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import (
    MalformedPayload,
    MediaItem,
    ParsedWebhook,
    ProviderMessage,
    ProviderStatus,
    bare,
    media_label,
    plus,
)
from api.channels.numbers.service import NumberConfig
from api.config import get_settings
from api.conversations.inbound import InboundAttachment
from api.conversations.models import DeliveryStatus
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult

REFERENCE_PREFIX = "trt-"
_ACK = {
    "pending": DeliveryStatus.QUEUED,
    "server": DeliveryStatus.SENT,
    "device": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "played": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
    "error": DeliveryStatus.FAILED,
}
_KINDS = {
    "ptt": "audio",
    "audio": "audio",
    "image": "image",
    "video": "video",
    "sticker": "sticker",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class UData(_Model):
    id: str
    from_: str = ""
    to: str = ""
    pushname: str | None = None
    ack: str | None = None
    type: str = "chat"
    body: str = ""
    media: str | None = None
    fromMe: bool = False
    time: int | None = None
    location: dict[str, Any] | None = None
    error: str | None = None


class UEvent(_Model):
    event_type: str
    instanceId: str | int | None = None
    referenceId: str | None = None
    data: dict[str, Any]


def read_body(body: bytes) -> bytes:
    """UltraMsg posts JSON; some accounts post a form whose `data` field is that JSON."""
    stripped = body.lstrip()
    if stripped.startswith(b"{"):
        return body
    try:
        form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError as exc:
        raise MalformedPayload("Webhook do UltraMsg ilegível.") from exc
    values = form.get("data")
    if not values:
        raise MalformedPayload("Webhook do UltraMsg sem JSON.")
    return values[0].encode()


def parse_webhook(body: bytes) -> ParsedWebhook:
    try:
        raw = json.loads(read_body(body))
        event = UEvent.model_validate(raw)
        data = UData.model_validate({**event.data, "from_": event.data.get("from", "")})
    except (ValidationError, ValueError) as exc:
        raise MalformedPayload("Webhook do UltraMsg ilegível.") from exc
    parsed = ParsedWebhook()
    instance = str(event.instanceId) if event.instanceId is not None else None
    if instance:
        parsed.accounts.add(instance)
    if event.event_type == "message_received":
        if data.fromMe or data.from_.endswith("@g.us") or not data.from_:
            parsed.ignored.append("fromMe/group")
            return parsed
        parsed.messages.append(_message(data, instance, raw))
    elif event.event_type == "message_ack":
        status = _ACK.get((data.ack or "").lower())
        if status is None:
            parsed.ignored.append(f"ack:{data.ack}")
            return parsed
        reference = event.referenceId or ""
        ours = (
            reference.removeprefix(REFERENCE_PREFIX)
            if reference.startswith(REFERENCE_PREFIX)
            else ""
        )
        parsed.statuses.append(
            ProviderStatus(
                provider_id=data.id,
                status=status,
                error=data.error if status is DeliveryStatus.FAILED else None,
                message_id=int(ours) if ours.isdigit() and len(ours) < 19 else None,
            )
        )
    else:
        parsed.ignored.append(event.event_type)
    return parsed


def _message(data: UData, instance: str | None, raw: dict[str, Any]) -> ProviderMessage:
    meta: dict[str, Any] = {"message_type": data.type}
    if data.pushname:
        meta["profile_name"] = data.pushname
    media: tuple[MediaItem, ...] = ()
    if data.type == "chat":
        text = data.body
    elif data.type == "location" or data.location:
        loc = data.location or {}
        text = f"[localização: {loc.get('latitude')},{loc.get('longitude')}]"
        if loc.get("description"):
            text = text[:-1] + f" {loc['description']}]"
    elif data.media:
        kind = _KINDS.get(data.type, "document")
        media = (MediaItem(source_url=data.media),)
        # For media, UltraMsg's body is the caption (documents: the file name).
        caption = data.body if data.type in ("image", "video") else ""
        text = caption or f"[{media_label(None, kind)}]"
        if data.type == "document" and data.body:
            media = (MediaItem(source_url=data.media, filename=data.body[:200]),)
    else:
        text = data.body or f"[mensagem sem texto: {data.type}]"
    return ProviderMessage(
        external_id=data.id,
        sender=plus(data.from_),
        text=text,
        to=plus(data.to) if data.to else None,
        account_id=instance,
        media=media,
        meta=meta,
        raw={"provider": "ultramsg", **raw},
    )


class UltramsgAdapter:
    provider = Provider.ULTRAMSG
    requires_known_account = True

    def __init__(self) -> None:
        self._http = LoopClient()

    def verify(self, *, body: bytes, headers: Mapping[str, str], path_secret: str | None) -> bool:
        secret = get_settings().ultramsg.webhook_secret
        if secret is None or not path_secret:
            return False
        return hmac.compare_digest(path_secret.encode(), secret.get_secret_value().encode())

    def parse(self, body: bytes) -> ParsedWebhook:
        return parse_webhook(body)

    async def send(self, envelope: Envelope, number: NumberConfig) -> SendResult:
        settings = get_settings().ultramsg
        if number.token is None or not number.account_id:
            raise ChannelDeliveryError(
                "UltraMsg não configurado (ULTRAMSG_INSTANCE_ID e ULTRAMSG_TOKEN).", retryable=True
            )
        path, form = _send_call(envelope)
        form["token"] = number.token.get_secret_value()
        form["referenceId"] = f"{REFERENCE_PREFIX}{envelope.message_id}"
        response = await request(
            self._http,
            "POST",
            f"{settings.base_url.rstrip('/')}/{number.account_id}/messages/{path}",
            label="UltraMsg",
            data=form,
        )
        answer = json_of(response)
        if response.status_code >= 300 or answer.get("error"):
            error = answer.get("error")
            if isinstance(error, list):
                error = "; ".join(
                    ", ".join(f"{k}: {v}" for k, v in item.items())
                    if isinstance(item, dict)
                    else str(item)
                    for item in error
                )
            raise refusal(response, label="UltraMsg", code=None, message=str(error or "recusado"))
        if str(answer.get("sent", "")).lower() != "true" or answer.get("id") in (None, ""):
            raise ChannelDeliveryError(
                "o UltraMsg aceitou a mensagem sem devolver o id", retryable=False
            )
        return SendResult(provider_id=str(answer["id"]), status=DeliveryStatus.QUEUED)

    async def download(
        self,
        http: httpx.AsyncClient,
        item: MediaItem,
        *,
        number: NumberConfig,
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        settings = get_settings().ultramsg
        return await fetch_file(
            http,
            item.source_url,
            headers={},
            trusted=[settings.base_url],
            hosts=settings.media_hosts,
            max_bytes=max_bytes,
            name=name,
            content_type=item.content_type,
            filename=item.filename,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def _send_call(envelope: Envelope) -> tuple[str, dict[str, str]]:
    to = bare(envelope.to)
    media = [a for a in envelope.attachments if a.get("url")]
    # No template approval here: a catalog template travels as the text we rendered.
    if media:
        first = media[0]
        kind = first.get("content_type", "").split("/", 1)[0]
        if kind == "image":
            return "image", {"to": to, "image": first["url"], "caption": envelope.text}
        if kind == "audio":
            return "audio", {"to": to, "audio": first["url"]}
        if kind == "video":
            return "video", {"to": to, "video": first["url"], "caption": envelope.text}
        return "document", {
            "to": to,
            "document": first["url"],
            "filename": first.get("filename") or "documento.pdf",
            "caption": envelope.text,
        }
    return "chat", {"to": to, "body": envelope.text}
