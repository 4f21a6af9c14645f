"""Reading Cloud API webhooks and sending through the Cloud API (Graph or 360dialog).

The two providers differ only in where the API is, how a request authenticates, and how a
webhook proves its origin (`whatsapp_meta`, `whatsapp_360dialog` bind those); the payloads are
Meta's either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from api.channels.numbers.http import LoopClient, json_of, refusal, request
from api.channels.numbers.media import fetch_file, refused
from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import (
    MalformedPayload,
    MediaItem,
    ParsedWebhook,
    ProviderMessage,
    ProviderStatus,
    bare,
    error_text,
    media_label,
    plus,
)
from api.channels.numbers.service import NumberConfig
from api.channels.whatsapp_cloud import payloads as p
from api.conversations.inbound import InboundAttachment
from api.conversations.models import DeliveryStatus
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE_LANGUAGE = "pt_BR"
_STATUS = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
}
# Graph error codes worth another try (rate limits, temporary unavailability):
# https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes
RETRYABLE_CODES = frozenset(
    {"1", "2", "4", "80007", "130429", "131000", "131016", "131048", "131056", "133004"}
)
_MEDIA_TYPES = ("image", "document", "audio", "video")


def parse_webhook(body: bytes, *, provider: Provider, media_base: str) -> ParsedWebhook:
    """Every message and status of a Cloud API webhook (several entries and changes may come
    in one call). `media_base` + "/" + media id is where a file's metadata is asked for."""
    try:
        webhook = p.Webhook.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedPayload("Webhook da Cloud API ilegível.") from exc
    parsed = ParsedWebhook()
    for entry in webhook.entry:
        for change in entry.changes:
            if change.field != "messages":
                parsed.ignored.append(change.field)
                continue
            try:
                value = p.Value.model_validate(change.value)
            except ValidationError as exc:
                raise MalformedPayload("Webhook da Cloud API sem metadata válida.") from exc
            ours = plus(value.metadata.display_phone_number)
            names = {c.wa_id: (c.profile.name if c.profile else None) for c in value.contacts}
            raw_change = change.value
            for message in value.messages:
                parsed.messages.append(
                    _message(
                        message,
                        ours=ours,
                        account_id=value.metadata.phone_number_id,
                        profile_name=names.get(message.from_),
                        media_base=media_base,
                        raw={
                            "provider": provider.value,
                            "metadata": raw_change.get("metadata"),
                            "contacts": raw_change.get("contacts"),
                            "message": message.model_dump(by_alias=True, exclude_none=True),
                        },
                    )
                )
            for status in value.statuses:
                reported = _STATUS.get(status.status)
                if reported is None:
                    parsed.ignored.append(f"status:{status.status}")
                    continue
                first = status.errors[0] if status.errors else None
                code = str(first.code) if first is not None else None
                parsed.statuses.append(
                    ProviderStatus(
                        provider_id=status.id,
                        status=reported,
                        error_code=code,
                        error=error_text(code, first.detail if first is not None else None),
                    )
                )
    return parsed


def _message(
    message: p.Message,
    *,
    ours: str,
    account_id: str,
    profile_name: str | None,
    media_base: str,
    raw: dict[str, Any],
) -> ProviderMessage:
    meta: dict[str, Any] = {"message_type": message.type, "wa_id": message.from_}
    if profile_name:
        meta["profile_name"] = profile_name
    if message.context is not None and message.context.id:
        meta["replied_to_id"] = message.context.id
    media: tuple[MediaItem, ...] = ()
    answerable = True
    text = ""
    found = message.media()
    if message.type == "text" and message.text is not None:
        text = message.text.body
    elif found is not None:
        kind = message.type
        media = (
            MediaItem(
                source_url=f"{media_base.rstrip('/')}/{found.id}",
                content_type=found.mime_type,
                filename=found.filename,
            ),
        )
        meta["media_types"] = [found.mime_type]
        text = found.caption or f"[{media_label(found.mime_type, kind)}]"
    elif message.type == "location" and message.location is not None:
        loc = message.location
        place = " ".join(x for x in (loc.name, loc.address) if x)
        text = f"[localização: {loc.latitude},{loc.longitude}{' ' + place if place else ''}]"
        meta["location"] = loc.model_dump(exclude_none=True)
    elif message.type == "interactive" and message.interactive is not None:
        reply = message.interactive.button_reply or message.interactive.list_reply
        text = reply.title if reply is not None else "[resposta interativa]"
        if reply is not None:
            meta["reply_id"] = reply.id
    elif message.type == "button" and message.button is not None:
        text = message.button.text
        meta["button_payload"] = message.button.payload
    elif message.type == "reaction" and message.reaction is not None:
        # A reaction to one of our messages: kept on the timeline, never a turn for the bot.
        text = f"[reação: {message.reaction.emoji or 'removida'}]"
        meta["reacted_to_id"] = message.reaction.message_id
        answerable = False
    else:
        detail = message.errors[0].detail if message.errors else ""
        text = f"[mensagem sem texto: {message.type}{': ' + detail if detail else ''}]"
    return ProviderMessage(
        external_id=message.id,
        sender=plus(message.from_),
        text=text,
        to=ours,
        account_id=account_id,
        media=media,
        meta=meta,
        raw=raw,
        answerable=answerable,
    )


def message_body(envelope: Envelope) -> dict[str, Any]:
    """The JSON of POST /{phone-number-id}/messages for one outbox envelope."""
    body: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": bare(envelope.to),
    }
    if envelope.content_sid:
        # An approved template by name and language; its body variables in their order.
        variables = envelope.content_variables or {}
        ordered = [
            variables[k] for k in sorted(variables, key=lambda k: int(k) if k.isdigit() else 0)
        ]
        template: dict[str, Any] = {
            "name": envelope.content_sid,
            "language": {
                "code": str(envelope.meta.get("template_language") or DEFAULT_TEMPLATE_LANGUAGE)
            },
        }
        if ordered:
            template["components"] = [
                {"type": "body", "parameters": [{"type": "text", "text": v} for v in ordered]}
            ]
        body.update(type="template", template=template)
        return body
    media = [a for a in envelope.attachments if a.get("url")]
    if media:
        first = media[0]
        kind = _media_kind(first.get("content_type", ""))
        item: dict[str, Any] = {"link": first["url"]}
        if envelope.text and kind != "audio":
            item["caption"] = envelope.text
        if kind == "document" and first.get("filename"):
            item["filename"] = first["filename"]
        if len(media) > 1 or (envelope.text and kind == "audio"):
            log.warning("message %s: only the first attachment is sent", envelope.message_id)
        body.update(type=kind, **{kind: item})
        return body
    body.update(type="text", text={"body": envelope.text, "preview_url": False})
    return body


def _media_kind(content_type: str) -> str:
    kind = content_type.split("/", 1)[0].lower()
    if kind in ("image", "audio", "video"):
        return kind
    return "document"


class CloudApiClient:
    """Sends and downloads through a Cloud API endpoint."""

    def __init__(self, *, provider: Provider, label: str) -> None:
        self.provider = provider
        self.label = label
        self._http = LoopClient()

    async def post_message(
        self, url: str, envelope: Envelope, *, headers: Mapping[str, str]
    ) -> SendResult:
        response = await request(
            self._http,
            "POST",
            url,
            label=self.label,
            content=json.dumps(message_body(envelope), ensure_ascii=False).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        answer = json_of(response)
        if response.status_code >= 300:
            error = p.GraphError.model_validate(answer.get("error") or {})
            code = str(error.code) if error.code is not None else None
            detail = str((error.error_data or {}).get("details") or error.message or "")
            raise refusal(
                response,
                label=self.label,
                code=code,
                message=error_text(code, detail) or "recusado",
                retryable_codes=RETRYABLE_CODES,
            )
        try:
            sent = p.SendAnswer.model_validate(answer)
        except ValidationError:
            sent = p.SendAnswer()
        if not sent.messages:
            # Accepted without an id we could track: retrying might send it twice.
            raise ChannelDeliveryError(
                f"{self.label} aceitou a mensagem sem devolver o id", retryable=False
            )
        status = DeliveryStatus.QUEUED
        if sent.messages[0].message_status == "held_for_quality_assessment":
            status = DeliveryStatus.QUEUED
        return SendResult(provider_id=sent.messages[0].id, status=status)

    async def download(
        self,
        http: httpx.AsyncClient,
        item: MediaItem,
        *,
        headers: Mapping[str, str],
        trusted: list[str],
        hosts: tuple[str, ...],
        rewrite_to: str | None,
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        """GET the media's metadata by id, then its URL (both with our credentials)."""
        try:
            response = await http.get(item.source_url, headers=dict(headers))
        except httpx.HTTPError as exc:
            return refused(
                item.content_type,
                f"falha de rede ao consultar a mídia ({type(exc).__name__})",
                retryable=True,
            )
        if response.status_code != 200:
            return refused(
                item.content_type,
                f"mídia indisponível (HTTP {response.status_code})",
                retryable=response.status_code in (408, 429, 500, 502, 503, 504),
            )
        try:
            info = p.MediaInfo.model_validate(json_of(response))
        except ValidationError:
            return refused(item.content_type, "resposta da mídia sem URL")
        url = info.url
        if rewrite_to:
            # 360dialog: the lookaside URL is fetched through its own host, same path and query.
            original = httpx.URL(url)
            base = httpx.URL(rewrite_to)
            url = str(original.copy_with(scheme=base.scheme, host=base.host, port=base.port))
        return await fetch_file(
            http,
            url,
            headers=headers,
            trusted=trusted,
            hosts=hosts,
            max_bytes=max_bytes,
            name=name,
            content_type=info.mime_type or item.content_type,
            filename=item.filename,
        )

    async def aclose(self) -> None:
        await self._http.aclose()


def number_id(number: NumberConfig) -> str:
    if not number.account_id:
        raise ChannelDeliveryError(
            "número da Cloud API sem phone-number id (META_PHONE_NUMBER_ID ou account_id)",
            retryable=True,
        )
    return number.account_id
