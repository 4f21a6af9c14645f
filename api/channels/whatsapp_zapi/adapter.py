"""Z-API: ReceivedCallback / MessageStatusCallback / DeliveryCallback webhooks, sends through
/instances/{id}/token/{token}/send-* with the account's Client-Token header.

https://developer.z-api.io/webhooks/on-message-received
Z-API signs nothing: a webhook is taken only at /webhooks/zapi/{ZAPI_WEBHOOK_SECRET} and for an
instance we know (the instance id in the payload is checked against our numbers after parsing).
Unofficial: it drives a WhatsApp Web session, the number may be banned, there is no template
approval (a catalog template goes as its text), and we still apply the 24-hour rule ourselves.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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

_STATUS = {
    "SENT": DeliveryStatus.SENT,
    "RECEIVED": DeliveryStatus.DELIVERED,
    "READ": DeliveryStatus.READ,
    "PLAYED": DeliveryStatus.READ,
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class ZText(_Model):
    message: str = ""


class ZMedia(_Model):
    mimeType: str | None = None
    caption: str | None = None
    imageUrl: str | None = None
    audioUrl: str | None = None
    videoUrl: str | None = None
    documentUrl: str | None = None
    stickerUrl: str | None = None
    fileName: str | None = None

    @property
    def url(self) -> str | None:
        return (
            self.imageUrl or self.audioUrl or self.videoUrl or self.documentUrl or self.stickerUrl
        )


class ZLocation(_Model):
    latitude: float
    longitude: float
    address: str | None = None
    name: str | None = None


class ZChoice(_Model):
    message: str | None = None
    title: str | None = None
    buttonId: str | None = None
    selectedRowId: str | None = None


class ZReaction(_Model):
    value: str | None = None
    referencedMessage: dict[str, Any] | None = None


class ZCallback(_Model):
    type: str
    instanceId: str | None = None
    messageId: str | None = None
    phone: str | None = None
    connectedPhone: str | None = None
    fromMe: bool = False
    isGroup: bool = False
    isNewsletter: bool = False
    senderName: str | None = None
    chatName: str | None = None
    momment: int | None = None
    status: str | None = None
    ids: list[str] = Field(default_factory=list)
    zaapId: str | None = None
    error: str | None = None
    text: ZText | None = None
    image: ZMedia | None = None
    audio: ZMedia | None = None
    video: ZMedia | None = None
    document: ZMedia | None = None
    sticker: ZMedia | None = None
    location: ZLocation | None = None
    buttonsResponseMessage: ZChoice | None = None
    listResponseMessage: ZChoice | None = None
    reaction: ZReaction | None = None


def parse_webhook(body: bytes) -> ParsedWebhook:
    try:
        callback = ZCallback.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedPayload("Webhook do Z-API ilegível.") from exc
    raw = json.loads(body)
    parsed = ParsedWebhook()
    if callback.instanceId:
        parsed.accounts.add(callback.instanceId)
    if callback.type == "ReceivedCallback":
        if callback.fromMe or callback.isGroup or callback.isNewsletter:
            parsed.ignored.append("fromMe/group")
            return parsed
        if not callback.messageId or not callback.phone:
            raise MalformedPayload("ReceivedCallback sem messageId ou phone.")
        parsed.messages.append(_message(callback, raw))
    elif callback.type == "MessageStatusCallback":
        status = _STATUS.get((callback.status or "").upper())
        if status is None:
            parsed.ignored.append(f"status:{callback.status}")
        else:
            for provider_id in callback.ids:
                parsed.statuses.append(ProviderStatus(provider_id=provider_id, status=status))
    elif callback.type == "DeliveryCallback":
        if callback.messageId:
            failed = bool(callback.error)
            parsed.statuses.append(
                ProviderStatus(
                    provider_id=callback.messageId,
                    status=DeliveryStatus.FAILED if failed else DeliveryStatus.SENT,
                    error=callback.error if failed else None,
                )
            )
    else:
        parsed.ignored.append(callback.type)
    return parsed


def _message(callback: ZCallback, raw: dict[str, Any]) -> ProviderMessage:
    assert callback.messageId is not None and callback.phone is not None
    meta: dict[str, Any] = {"message_type": "text"}
    if callback.senderName:
        meta["profile_name"] = callback.senderName
    media: tuple[MediaItem, ...] = ()
    answerable = True
    found = next(
        (
            (kind, item)
            for kind, item in (
                ("image", callback.image),
                ("audio", callback.audio),
                ("video", callback.video),
                ("document", callback.document),
                ("sticker", callback.sticker),
            )
            if item is not None
        ),
        None,
    )
    if callback.text is not None:
        text = callback.text.message
    elif found is not None and found[1].url:
        kind, item = found
        meta["message_type"] = kind
        meta["media_types"] = [item.mimeType]
        media = (
            MediaItem(source_url=str(item.url), content_type=item.mimeType, filename=item.fileName),
        )
        text = item.caption or f"[{media_label(item.mimeType, kind)}]"
    elif callback.location is not None:
        loc = callback.location
        place = " ".join(x for x in (loc.name, loc.address) if x)
        text = f"[localização: {loc.latitude},{loc.longitude}{' ' + place if place else ''}]"
        meta["message_type"] = "location"
    elif callback.buttonsResponseMessage is not None or callback.listResponseMessage is not None:
        choice = callback.buttonsResponseMessage or callback.listResponseMessage
        assert choice is not None
        text = choice.message or choice.title or "[resposta interativa]"
        meta["message_type"] = "interactive"
    elif callback.reaction is not None:
        text = f"[reação: {callback.reaction.value or 'removida'}]"
        meta["message_type"] = "reaction"
        answerable = False
    else:
        text = "[mensagem sem texto: desconhecido]"
    return ProviderMessage(
        external_id=callback.messageId,
        sender=plus(callback.phone),
        text=text,
        to=plus(callback.connectedPhone) if callback.connectedPhone else None,
        account_id=callback.instanceId,
        media=media,
        meta=meta,
        raw={"provider": "zapi", **raw},
        answerable=answerable,
    )


class ZapiAdapter:
    provider = Provider.ZAPI
    # The payload names the instance: it must be one of ours.
    requires_known_account = True

    def __init__(self) -> None:
        self._http = LoopClient()

    def verify(self, *, body: bytes, headers: Mapping[str, str], path_secret: str | None) -> bool:
        secret = get_settings().zapi.webhook_secret
        if secret is None or not path_secret:
            return False
        return hmac.compare_digest(path_secret.encode(), secret.get_secret_value().encode())

    def parse(self, body: bytes) -> ParsedWebhook:
        return parse_webhook(body)

    async def send(self, envelope: Envelope, number: NumberConfig) -> SendResult:
        settings = get_settings().zapi
        if number.token is None or not number.account_id:
            raise ChannelDeliveryError(
                "Z-API não configurado (ZAPI_INSTANCE_ID e ZAPI_TOKEN).", retryable=True
            )
        base = (
            f"{settings.base_url.rstrip('/')}/instances/{number.account_id}"
            f"/token/{number.token.get_secret_value()}"
        )
        path, body = _send_call(envelope)
        headers = {"Content-Type": "application/json"}
        if settings.client_token is not None:
            headers["Client-Token"] = settings.client_token.get_secret_value()
        response = await request(
            self._http,
            "POST",
            f"{base}/{path}",
            label="Z-API",
            content=json.dumps(body, ensure_ascii=False).encode(),
            headers=headers,
        )
        answer = json_of(response)
        if response.status_code >= 300 or answer.get("error"):
            message = str(answer.get("message") or answer.get("error") or "recusado")
            raise refusal(response, label="Z-API", code=None, message=message)
        provider_id = answer.get("messageId") or answer.get("id")
        if not provider_id:
            raise ChannelDeliveryError(
                "o Z-API aceitou a mensagem sem devolver o id", retryable=False
            )
        return SendResult(provider_id=str(provider_id), status=DeliveryStatus.QUEUED)

    async def download(
        self,
        http: httpx.AsyncClient,
        item: MediaItem,
        *,
        number: NumberConfig,
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        settings = get_settings().zapi
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


def _send_call(envelope: Envelope) -> tuple[str, dict[str, Any]]:
    phone = bare(envelope.to)
    media = [a for a in envelope.attachments if a.get("url")]
    # No template approval here: a catalog template travels as the text we rendered.
    if media:
        first = media[0]
        kind = first.get("content_type", "").split("/", 1)[0]
        if kind == "image":
            return "send-image", {"phone": phone, "image": first["url"], "caption": envelope.text}
        if kind == "audio":
            return "send-audio", {"phone": phone, "audio": first["url"]}
        if kind == "video":
            return "send-video", {"phone": phone, "video": first["url"], "caption": envelope.text}
        filename = first.get("filename") or "documento"
        extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else "pdf"
        return f"send-document/{extension}", {
            "phone": phone,
            "document": first["url"],
            "fileName": filename,
            "caption": envelope.text,
        }
    return "send-text", {"phone": phone, "message": envelope.text}
