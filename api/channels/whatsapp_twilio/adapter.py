"""Pure helpers for Twilio's WhatsApp webhooks: the signature, the URL it covers, the form.

Nothing here touches the network or the database; `routes` wires it to both.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from twilio.request_validator import RequestValidator, get_signature_algorithm

from api.conversations.inbound import InboundAttachment, InboundMessage
from api.conversations.models import Channel
from api.errors import AppError
from api.identifiers.errors import InvalidIdentifier
from api.identifiers.phones import normalize_phone

WHATSAPP_PREFIX = "whatsapp:"
# Twilio accepts up to 10 media per message (WhatsApp itself sends one); ignore anything past it.
MAX_MEDIA = 10
_SID_RE = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")  # SM…, MM… (with media)
# Form values we keep in the message metadata (names as Twilio sends them).
_META_FIELDS = {
    "ProfileName": "profile_name",
    "WaId": "wa_id",
    "MessageType": "message_type",
    "To": "to",
    "ButtonText": "button_text",
    "ButtonPayload": "button_payload",
    "ListId": "list_id",
    "ListTitle": "list_title",
    "OriginalRepliedMessageSid": "replied_to_sid",
    "Forwarded": "forwarded",
}
_MEDIA_LABELS = (
    ("image/webp", "figurinha"),
    ("image/", "imagem"),
    ("audio/", "áudio"),
    ("video/", "vídeo"),
    ("application/pdf", "documento"),
    ("text/vcard", "contato"),
    ("text/x-vcard", "contato"),
)

Params = Mapping[str, Sequence[str]]


class MalformedWebhook(AppError):
    """A webhook that is signed but not a message Twilio would send."""

    code = "malformed_webhook"
    status_code = 400


@dataclass(frozen=True)
class MediaRef:
    index: int
    url: str
    content_type: str | None


@dataclass(frozen=True)
class Location:
    latitude: str
    longitude: str
    address: str | None = None
    label: str | None = None

    def as_text(self) -> str:
        place = " ".join(part for part in (self.label, self.address) if part)
        return f"[localização: {self.latitude},{self.longitude}{' ' + place if place else ''}]"


@dataclass(frozen=True)
class ParsedWhatsApp:
    """A Twilio WhatsApp message webhook, read."""

    message_sid: str
    sender: str  # as Twilio sent it: "whatsapp:+5511987654321"
    phone: str  # E.164
    to: str | None
    body: str
    text: str  # what we store: the body, or a description of a message without one
    media: tuple[MediaRef, ...] = ()
    location: Location | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, str] = field(default_factory=dict)


def parse_form_body(body: bytes) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body as Twilio signs it: every value of every key."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedWebhook("Corpo do webhook não é UTF-8.") from exc
    params: dict[str, list[str]] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        params.setdefault(key, []).append(value)
    return params


def verify_signature(
    url: str,
    params: Params,
    signature: str | None,
    auth_token: str,
    *,
    signature_settings: str | None = None,
) -> bool:
    """Check X-Twilio-Signature for the URL Twilio requested and the POSTed params.

    The twilio library validates the URL with and without the default port, as Twilio does.
    """
    if not signature or not auth_token:
        return False
    return bool(
        RequestValidator(auth_token).validate(
            url,
            _MultiParams(params),
            signature,
            algorithm=get_signature_algorithm(signature_settings),
        )
    )


def public_url(
    *,
    path: str,
    query: str,
    public_base_url: str,
    headers: Mapping[str, str] | None = None,
) -> str:
    """The URL Twilio was given for this endpoint: PUBLIC_BASE_URL + path + query.

    With `headers`, X-Forwarded-Proto/X-Forwarded-Host (first hop) replace the scheme and host
    of the base, for a service reached through a tunnel or proxy under another name.
    """
    base = urlsplit(public_base_url.rstrip("/"))
    scheme, netloc = base.scheme, base.netloc
    if headers is not None:
        forwarded_host = _first(headers.get("x-forwarded-host"))
        forwarded_proto = _first(headers.get("x-forwarded-proto"))
        if forwarded_host:
            netloc = forwarded_host
            scheme = forwarded_proto or scheme
        elif forwarded_proto:
            scheme = forwarded_proto
    return urlunsplit((scheme, netloc, base.path + path, query, ""))


def parse_message_form(params: Params) -> ParsedWhatsApp:
    """Read an incoming-message webhook; a message without text still gets a readable text."""
    raw = {key: values[0] for key, values in params.items() if values}
    message_sid = raw.get("MessageSid") or raw.get("SmsMessageSid") or ""
    sender = raw.get("From", "").strip()
    if not message_sid or not _SID_RE.fullmatch(message_sid):
        raise MalformedWebhook("Webhook sem MessageSid válido.")
    if not sender:
        raise MalformedWebhook("Webhook sem remetente (From).")
    try:
        phone = normalize_phone(sender)
    except InvalidIdentifier as exc:
        raise MalformedWebhook("Remetente (From) não é um telefone válido.") from exc

    media = tuple(
        MediaRef(index=i, url=url, content_type=raw.get(f"MediaContentType{i}") or None)
        for i in range(MAX_MEDIA)
        if (url := raw.get(f"MediaUrl{i}", "").strip())
    )
    location = _location(raw)
    body = raw.get("Body", "")
    meta: dict[str, Any] = {
        name: raw[key] for key, name in _META_FIELDS.items() if raw.get(key) not in (None, "")
    }
    if location is not None:
        meta["location"] = {
            k: v
            for k, v in (
                ("latitude", location.latitude),
                ("longitude", location.longitude),
                ("address", location.address),
                ("label", location.label),
            )
            if v
        }
    if media:
        meta["media_types"] = [m.content_type for m in media]
    return ParsedWhatsApp(
        message_sid=message_sid,
        sender=sender,
        phone=phone,
        to=raw.get("To") or None,
        body=body,
        text=_text_of(raw, body, media, location),
        media=media,
        location=location,
        meta=meta,
        raw=raw,
    )


def to_inbound(
    parsed: ParsedWhatsApp,
    *,
    attachments: Sequence[InboundAttachment] = (),
    received_at: dt.datetime,
) -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=parsed.message_sid,
        sender=parsed.sender,
        text=parsed.text,
        received_at=received_at,
        raw=dict(parsed.raw),
        attachments=tuple(attachments),
        meta={"provider": "twilio", **parsed.meta},
    )


def pending_media(refs: Sequence[MediaRef]) -> list[InboundAttachment]:
    """The media of a message as references to fetch after the webhook is acknowledged."""
    return [
        InboundAttachment(
            content_type=(ref.content_type or "application/octet-stream")
            .split(";")[0]
            .strip()
            .lower(),
            data=None,
            source_url=ref.url,
        )
        for ref in refs
    ]


def media_label(content_type: str | None) -> str:
    """How an analyst or the bot reads a media type (pt-BR)."""
    kind = (content_type or "").lower()
    for prefix, label in _MEDIA_LABELS:
        if kind.startswith(prefix):
            return label
    return "arquivo"


def _text_of(
    raw: Mapping[str, str], body: str, media: Sequence[MediaRef], location: Location | None
) -> str:
    parts: list[str] = []
    if location is not None:
        parts.append(location.as_text())
    if body.strip():
        parts.append(body)
    elif raw.get("ButtonText"):
        parts.append(raw["ButtonText"])
    elif raw.get("ListTitle"):
        parts.append(raw["ListTitle"])
    if parts:
        return " ".join(parts)
    if media:
        return "[" + ", ".join(media_label(m.content_type) for m in media) + "]"
    kind = raw.get("MessageType") or "desconhecido"
    return f"[mensagem sem texto: {kind}]"


def _location(raw: Mapping[str, str]) -> Location | None:
    latitude, longitude = raw.get("Latitude", "").strip(), raw.get("Longitude", "").strip()
    if not latitude or not longitude:
        return None
    return Location(
        latitude=latitude,
        longitude=longitude,
        address=raw.get("Address") or None,
        label=raw.get("Label") or None,
    )


def _first(value: str | None) -> str | None:
    if not value:
        return None
    return value.split(",")[0].strip() or None


class _MultiParams(dict[str, Sequence[str]]):
    """Hands every value of a repeated key to RequestValidator (it looks for `getall`)."""

    def __init__(self, params: Params) -> None:
        super().__init__(params)

    def getall(self, key: str) -> list[str]:
        return list(self[key])
