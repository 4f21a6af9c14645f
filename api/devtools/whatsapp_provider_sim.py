"""A local, in-memory server speaking the wire format of one WhatsApp provider beyond Twilio:
Meta's Cloud API (Graph), 360dialog, Z-API or UltraMsg — the part Tratativa uses.

- The provider's send API (its paths, its authentication, its answers and errors); accepted
  messages are recorded and get the provider's status webhooks (sent, then delivered).
- Media: files it hosts for inbound messages (Cloud API: by media id, then a credentialed URL).
- `/_sim/…`: the same control API as the Twilio simulator — fault injection, the recorded
  messages (long polling), media hosting, "an infringer writes" (posts a signed or authenticated
  webhook to the service) and "send this status now" (statuses in any order).

Each provider has a thin entry point: `python -m api.devtools.meta_simulator` (also
`dialog360_simulator`, `zapi_simulator`, `ultramsg_simulator`) --port … --webhook-base ….
Single process, bounded memory, not for production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import hmac
import itertools
import json
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("whatsapp_provider_sim")

PROVIDERS = ("meta", "360dialog", "zapi", "ultramsg")
GRAPH_VERSION = "v21.0"
MAX_MESSAGES = 10_000
MAX_MEDIA_ITEMS = 256
MAX_MEDIA_BYTES = 32 * 1024 * 1024
MAX_WAIT_SECONDS = 30.0
MAX_FAULTS = 100
DEFAULT_PORTS = {"meta": 8101, "360dialog": 8102, "zapi": 8103, "ultramsg": 8104}
OUTSIDE_WINDOW = {
    "code": 131047,
    "title": "Re-engagement message",
    "message": "Re-engagement message",
    "error_data": {
        "details": "Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number."
    },
}


@dataclass(frozen=True)
class SimConfig:
    """Development credentials of every provider (the service's dev defaults use the same)."""

    provider: str = "meta"
    webhook_base: str = "http://127.0.0.1:8000"
    number: str = "+5511940000001"  # our number at the provider (E.164)
    # Meta / 360dialog
    app_secret: str = "dev-meta-app-secret"
    access_token: str = "dev-meta-access-token"
    phone_number_id: str = "100000000000001"
    waba_id: str = "200000000000001"
    d360_api_key: str = "dev-d360-api-key"
    d360_header: str = "X-Tratativa-Webhook-Secret"
    # Z-API / UltraMsg
    instance_id: str = "3C0FFEE0000000000000000000000001"
    token: str = "dev-instance-token"
    client_token: str = "dev-zapi-client-token"
    webhook_secret: str = "dev-webhook-secret"
    callback_delay_seconds: float = 0.2

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")


@dataclass
class Fault:
    status: int
    code: int | None
    remaining: int
    message: str | None = None
    to: str | None = None
    retry_after: str | None = None
    # Accept the message, then report it failed with this code (Meta: 131047 arrives so).
    async_error: int | None = None


@dataclass
class SimMessage:
    seq: int
    id: str
    to: str  # E.164
    kind: str
    body: str
    template: dict[str, Any] | None
    media: dict[str, Any] | None
    reference_id: str | None
    status: str
    received_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "id": self.id,
            "to": self.to,
            "type": self.kind,
            "body": self.body,
            "template": self.template,
            "media": self.media,
            "reference_id": self.reference_id,
            "status": self.status,
            "received_at": self.received_at,
            "callbacks": list(self.callbacks),
        }


@dataclass
class Media:
    content_type: str
    data: bytes
    fetches: int = 0
    unauthorized: int = 0
    fail_first: int = 0
    fail_status: int = 503


class SimState:
    def __init__(self) -> None:
        self.messages: deque[SimMessage] = deque(maxlen=MAX_MESSAGES)
        self.faults: list[Fault] = []
        self.media: OrderedDict[str, Media] = OrderedDict()
        self._seq = itertools.count(1)
        self.changed = asyncio.Condition()

    def next_seq(self) -> int:
        return next(self._seq)

    def take_fault(self, to: str) -> Fault | None:
        for fault in self.faults:
            if fault.to is None or digits(fault.to) == digits(to):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def add_media(self, content_type: str, data: bytes) -> str:
        media_id = str(10**14 + secrets.randbelow(10**14))
        self.media[media_id] = Media(content_type, data)
        while len(self.media) > MAX_MEDIA_ITEMS:
            self.media.popitem(last=False)
        return media_id

    def find(self, *, to: str | None, after: int) -> list[SimMessage]:
        return [
            m for m in self.messages if m.seq > after and (to is None or digits(m.to) == digits(to))
        ]

    def by_id(self, message_id: str) -> SimMessage | None:
        return next((m for m in self.messages if m.id == message_id), None)


def digits(phone: str) -> str:
    return "".join(ch for ch in phone.split("@", 1)[0] if ch.isdigit())


def new_message_id(provider: str, *, inbound: bool = False, phone: str = "") -> str:
    if provider in ("meta", "360dialog"):
        return "wamid.HBgM" + base64.b64encode(secrets.token_bytes(24)).decode().rstrip("=")
    if provider == "zapi":
        return "3EB0" + secrets.token_hex(8).upper()
    # UltraMsg: WhatsApp Web's serialized id, "<fromMe>_<chat>@c.us_<id>"
    return (
        f"{'false' if inbound else 'true'}_{digits(phone)}@c.us_3EB0{secrets.token_hex(8).upper()}"
    )


# --- payload builders (also used by tests to post webhooks of their own) -----------------------


def cloud_value(cfg: SimConfig, **parts: Any) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": cfg.waba_id,
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": digits(cfg.number),
                                "phone_number_id": cfg.phone_number_id,
                            },
                            **parts,
                        },
                    }
                ],
            }
        ],
    }


def build_message_payload(
    cfg: SimConfig,
    *,
    sender: str,
    body: str = "",
    message_id: str | None = None,
    profile_name: str | None = "Infrator Teste",
    media: tuple[str, str, str | None] | None = None,  # (media id or url, content type, name)
    location: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """An inbound message webhook as the provider sends it."""
    provider = cfg.provider
    now = int(time.time())
    message_id = message_id or new_message_id(provider, inbound=True, phone=sender)
    if provider in ("meta", "360dialog"):
        message: dict[str, Any] = {"from": digits(sender), "id": message_id, "timestamp": str(now)}
        if media is not None:
            ref, content_type, filename = media
            kind = _cloud_kind(content_type)
            item: dict[str, Any] = {"id": ref, "mime_type": content_type, "sha256": "x"}
            if body and kind in ("image", "video", "document"):
                item["caption"] = body
            if kind == "document":
                item["filename"] = filename or "documento.pdf"
            if kind == "audio":
                item["voice"] = True
            message.update(type=kind, **{kind: item})
        elif location is not None:
            message.update(
                type="location", location={"latitude": location[0], "longitude": location[1]}
            )
        else:
            message.update(type="text", text={"body": body})
        return cloud_value(
            cfg,
            contacts=[{"profile": {"name": profile_name or ""}, "wa_id": digits(sender)}],
            messages=[message],
        )
    if provider == "zapi":
        payload: dict[str, Any] = {
            "isStatusReply": False,
            "senderLid": f"{secrets.randbelow(10**14)}@lid",
            "connectedPhone": digits(cfg.number),
            "waitingMessage": False,
            "isEdit": False,
            "isGroup": False,
            "isNewsletter": False,
            "instanceId": cfg.instance_id,
            "messageId": message_id,
            "phone": digits(sender),
            "fromMe": False,
            "momment": now * 1000,
            "status": "RECEIVED",
            "chatName": profile_name,
            "senderPhoto": None,
            "senderName": profile_name,
            "participantPhone": None,
            "photo": None,
            "broadcast": False,
            "type": "ReceivedCallback",
        }
        if media is not None:
            url, content_type, filename = media
            kind = _cloud_kind(content_type)
            item = {"mimeType": content_type, f"{kind}Url": url}
            if kind in ("image", "video"):
                item["caption"] = body
            if kind == "document":
                item["fileName"] = filename or "documento.pdf"
            if kind == "audio":
                item["ptt"] = True
            payload[kind] = item
        elif location is not None:
            payload["location"] = {"latitude": location[0], "longitude": location[1]}
        else:
            payload["text"] = {"message": body}
        return payload
    data: dict[str, Any] = {
        "id": message_id,
        "from": f"{digits(sender)}@c.us",
        "to": f"{digits(cfg.number)}@c.us",
        "author": "",
        "pushname": profile_name or "",
        "ack": "",
        "type": "chat",
        "body": body,
        "media": "",
        "fromMe": False,
        "self": False,
        "isForwarded": False,
        "isMentioned": False,
        "quotedMsg": {},
        "mentionedIds": [],
        "time": now,
    }
    if media is not None:
        url, content_type, filename = media
        kind = _cloud_kind(content_type)
        data.update(
            type={"audio": "ptt"}.get(kind, kind),
            media=url,
            body=(filename or "documento.pdf") if kind == "document" else body,
        )
    elif location is not None:
        data.update(type="location", location={"latitude": location[0], "longitude": location[1]})
    return {
        "event_type": "message_received",
        "instanceId": cfg.instance_id,
        "id": "",
        "referenceId": "",
        "hash": secrets.token_hex(16),
        "data": data,
    }


def build_status_payload(
    cfg: SimConfig,
    *,
    message_id: str,
    to: str,
    status: str,
    error_code: int | None = None,
    error_message: str | None = None,
    reference_id: str | None = None,
) -> dict[str, Any]:
    """A delivery status webhook. `status`: sent, delivered, read or failed (mapped to the
    provider's own words)."""
    provider = cfg.provider
    now = int(time.time())
    if provider in ("meta", "360dialog"):
        item: dict[str, Any] = {
            "id": message_id,
            "status": status,
            "timestamp": str(now),
            "recipient_id": digits(to),
        }
        if status != "failed":
            item["conversation"] = {
                "id": secrets.token_hex(16),
                "origin": {"type": "service"},
            }
            item["pricing"] = {"billable": True, "pricing_model": "CBP", "category": "service"}
        else:
            error = (
                dict(OUTSIDE_WINDOW)
                if error_code in (None, 131047)
                else {
                    "code": error_code,
                    "title": error_message or "Error",
                    "message": error_message or "Error",
                    "error_data": {"details": error_message or "Error"},
                }
            )
            item["errors"] = [error]
        return cloud_value(cfg, statuses=[item])
    if provider == "zapi":
        if status == "failed":
            return {
                "phone": digits(to),
                "zaapId": secrets.token_hex(16).upper(),
                "messageId": message_id,
                "type": "DeliveryCallback",
                "instanceId": cfg.instance_id,
                "error": error_message or "Não foi possível entregar a mensagem",
            }
        return {
            "status": {"sent": "SENT", "delivered": "RECEIVED", "read": "READ"}[status],
            "ids": [message_id],
            "momment": now * 1000,
            "phoneDevice": 0,
            "phone": digits(to),
            "instanceId": cfg.instance_id,
            "type": "MessageStatusCallback",
            "isGroup": False,
        }
    return {
        "event_type": "message_ack",
        "instanceId": cfg.instance_id,
        "id": "",
        "referenceId": reference_id or "",
        "hash": secrets.token_hex(16),
        "data": {
            "id": message_id,
            "from": f"{digits(cfg.number)}@c.us",
            "to": f"{digits(to)}@c.us",
            "ack": {"sent": "server", "delivered": "device", "read": "read"}.get(status, "failed"),
            "type": "chat",
            "fromMe": True,
            "time": now,
            **({"error": error_message or "failed"} if status == "failed" else {}),
        },
    }


def webhook_path(cfg: SimConfig, *, secret: str | None = None) -> str:
    if cfg.provider == "meta":
        return "/webhooks/meta/whatsapp"
    name = cfg.provider
    return f"/webhooks/{name}/{secret if secret is not None else cfg.webhook_secret}"


def webhook_headers(cfg: SimConfig, body: bytes) -> dict[str, str]:
    """The headers that authenticate a webhook as the provider sends it."""
    headers = {"Content-Type": "application/json"}
    if cfg.provider == "meta":
        headers["X-Hub-Signature-256"] = sign(body, cfg.app_secret)
    elif cfg.provider == "360dialog":
        headers[cfg.d360_header] = cfg.webhook_secret
    return headers


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _cloud_kind(content_type: str) -> str:
    head = content_type.split("/", 1)[0].lower()
    if content_type == "image/webp":
        return "sticker"
    return head if head in ("image", "audio", "video") else "document"


# --- the server ----------------------------------------------------------------------------------


def create_app(config: SimConfig | None = None) -> Starlette:
    cfg = config or SimConfig()
    state = SimState()
    holder: dict[str, httpx.AsyncClient] = {}
    background: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # Idle connections are dropped before uvicorn's 5 s keep-alive ends (httpx keeps them
        # 5 s too, a race), and a post that still meets a closing one is tried once more.
        holder["http"] = httpx.AsyncClient(
            timeout=httpx.Timeout(20.0, connect=5.0),
            limits=httpx.Limits(keepalive_expiry=2.0),
        )
        try:
            yield
        finally:
            for task in list(background):
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await holder["http"].aclose()

    async def post_webhook(payload: dict[str, Any], secret: str | None = None) -> int:
        body = encode(payload)
        url = cfg.webhook_base.rstrip("/") + webhook_path(cfg, secret=secret)
        for attempt in (1, 2):
            try:
                response = await holder["http"].post(
                    url, content=body, headers=webhook_headers(cfg, body)
                )
                return response.status_code
            except httpx.HTTPError as exc:
                # Webhooks are idempotent on the provider's message id: a connection that failed
                # is tried once more; a timeout is not (the service may still be working on it).
                retry = isinstance(exc, httpx.TransportError) and not isinstance(
                    exc, httpx.TimeoutException
                )
                if attempt == 1 and retry:
                    continue
                log.warning("webhook to %s failed: %r", url, exc)
                return 0
        return 0

    def spawn(work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        background.add(task)
        task.add_done_callback(background.discard)

    def authorized(request: Request) -> bool:
        if cfg.provider == "meta":
            given = request.headers.get("authorization", "")
            return hmac.compare_digest(given, f"Bearer {cfg.access_token}")
        if cfg.provider == "360dialog":
            return hmac.compare_digest(request.headers.get("d360-api-key", ""), cfg.d360_api_key)
        if cfg.provider == "zapi":
            return (
                request.path_params.get("instance") == cfg.instance_id
                and hmac.compare_digest(str(request.path_params.get("token", "")), cfg.token)
                and hmac.compare_digest(request.headers.get("client-token", ""), cfg.client_token)
            )
        return request.path_params.get("instance") == cfg.instance_id

    def error(
        status: int, code: int | None, message: str, retry_after: str | None = None
    ) -> Response:
        headers = {"Retry-After": retry_after} if retry_after is not None else None
        if cfg.provider in ("meta", "360dialog"):
            body: dict[str, Any] = {
                "error": {
                    "message": message,
                    "type": "OAuthException",
                    "code": code or status,
                    "error_data": {"messaging_product": "whatsapp", "details": message},
                    "fbtrace_id": secrets.token_urlsafe(12),
                }
            }
        elif cfg.provider == "zapi":
            body = {"error": str(code or status), "message": message}
        else:
            body = {"error": message}
        return JSONResponse(body, status_code=status, headers=headers)

    async def accept(
        to: str,
        kind: str,
        text: str,
        *,
        template: dict[str, Any] | None = None,
        media: dict[str, Any] | None = None,
        reference_id: str | None = None,
    ) -> tuple[SimMessage | None, Response | None]:
        fault = state.take_fault(to)
        if fault is not None and fault.async_error is None:
            return None, error(
                fault.status, fault.code, fault.message or "Simulated failure", fault.retry_after
            )
        message = SimMessage(
            seq=state.next_seq(),
            id=new_message_id(cfg.provider, phone=to),
            to="+" + digits(to),
            kind=kind,
            body=text,
            template=template,
            media=media,
            reference_id=reference_id,
            status="accepted",
            received_at=time.time(),
        )
        state.messages.append(message)
        async with state.changed:
            state.changed.notify_all()
        spawn(send_statuses(message, fault.async_error if fault is not None else None))
        return message, None

    async def send_statuses(message: SimMessage, async_error: int | None) -> None:
        steps = ["sent", "failed"] if async_error is not None else ["sent", "delivered"]
        for status in steps:
            await asyncio.sleep(cfg.callback_delay_seconds)
            payload = build_status_payload(
                cfg,
                message_id=message.id,
                to=message.to,
                status=status,
                error_code=async_error if status == "failed" else None,
                reference_id=message.reference_id,
            )
            code = await post_webhook(payload)
            message.status = status
            message.callbacks.append({"status": status, "http_status": code})

    # -- provider APIs --

    async def cloud_send(request: Request) -> Response:
        if not authorized(request) or (
            cfg.provider == "meta" and request.path_params.get("pnid") != cfg.phone_number_id
        ):
            return error(401, 190, "Invalid OAuth access token.")
        try:
            body = await request.json()
            to = str(body["to"])
            kind = str(body.get("type") or "text")
        except (ValueError, KeyError, TypeError):
            return error(400, 100, "Invalid parameter")
        if body.get("messaging_product") != "whatsapp":
            return error(400, 100, "The parameter messaging_product is required.")
        template = body.get("template") if kind == "template" else None
        media = body.get(kind) if kind in ("image", "document", "audio", "video") else None
        text = ""
        if kind == "text":
            text = str((body.get("text") or {}).get("body") or "")
            if not text:
                return error(400, 100, "The parameter text['body'] is required.")
        elif media is not None:
            text = str(media.get("caption") or "")
        elif template is None:
            return error(400, 131009, "Parameter value is not valid")
        message, refused = await accept(to, kind, text, template=template, media=media)
        if refused is not None:
            return refused
        assert message is not None
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": digits(to)}],
                "messages": [{"id": message.id}],
            }
        )

    async def cloud_media_info(request: Request) -> Response:
        if not authorized(request):
            return error(401, 190, "Invalid OAuth access token.")
        media_id = request.path_params["media_id"]
        media = state.media.get(media_id)
        if media is None:
            return error(404, 100, "Unsupported get request.")
        base = str(request.base_url).rstrip("/")
        # Meta answers a lookaside URL; 360dialog's docs say fetch it through its own host.
        url = f"{base}/whatsapp_business/attachments/?mid={media_id}&ext={int(time.time())}"
        return JSONResponse(
            {
                "messaging_product": "whatsapp",
                "url": url,
                "mime_type": media.content_type,
                "sha256": hashlib.sha256(media.data).hexdigest(),
                "file_size": len(media.data),
                "id": media_id,
            }
        )

    async def cloud_media_file(request: Request) -> Response:
        media = state.media.get(request.query_params.get("mid", ""))
        if media is None:
            return Response(status_code=404)
        if not authorized(request):
            media.unauthorized += 1
            return Response(status_code=401)
        return serve(media)

    def serve(media: Media) -> Response:
        media.fetches += 1
        if media.fail_first > 0:
            media.fail_first -= 1
            return Response(status_code=media.fail_status)
        return Response(media.data, media_type=media.content_type)

    async def public_media(request: Request) -> Response:
        media = state.media.get(request.path_params["media_id"])
        if media is None:
            return Response(status_code=404)
        return serve(media)

    async def zapi_send(request: Request) -> Response:
        if not authorized(request):
            if request.path_params.get("instance") != cfg.instance_id:
                return error(404, None, "Instance not found")
            return error(401, None, "your client-token is not configured")
        try:
            body = await request.json()
            phone = str(body["phone"])
        except (ValueError, KeyError, TypeError):
            return error(400, None, "phone is required")
        action = request.path_params["action"]
        kind = action.removeprefix("send-").split("/", 1)[0]
        media = None
        if kind == "text":
            text = str(body.get("message") or "")
            if not text:
                return error(400, None, "message is required")
        elif kind in ("image", "document", "audio", "video"):
            media = {"link": body.get(kind), "filename": body.get("fileName")}
            text = str(body.get("caption") or "")
        else:
            return error(404, None, "Not found")
        message, refused = await accept(phone, kind, text, media=media)
        if refused is not None:
            return refused
        assert message is not None
        return JSONResponse(
            {"zaapId": secrets.token_hex(16).upper(), "messageId": message.id, "id": message.id}
        )

    async def ultramsg_send(request: Request) -> Response:
        raw = (await request.body()).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        if request.path_params.get("instance") != cfg.instance_id:
            return error(404, None, "instance not found")
        if not hmac.compare_digest(form.get("token", ""), cfg.token):
            return error(401, None, "Wrong token. Please provide token as a GET parameter.")
        kind = request.path_params["kind"]
        to = form.get("to", "")
        if not to:
            return JSONResponse({"error": [{"to": "is required"}]}, status_code=400)
        media = None
        if kind == "chat":
            text = form.get("body", "")
            if not text:
                return JSONResponse({"error": [{"body": "is required"}]}, status_code=400)
        elif kind in ("image", "document", "audio", "video"):
            media = {"link": form.get(kind), "filename": form.get("filename")}
            text = form.get("caption", "")
        else:
            return error(404, None, "not found")
        message, refused = await accept(
            to, kind, text, media=media, reference_id=form.get("referenceId") or None
        )
        if refused is not None:
            return refused
        assert message is not None
        return JSONResponse({"sent": "true", "message": "ok", "id": message.seq})

    # -- control API --

    async def info(_request: Request) -> Response:
        last = state.messages[-1].seq if state.messages else 0
        return JSONResponse({"provider": cfg.provider, "number": cfg.number, "last_seq": last})

    async def list_messages(request: Request) -> Response:
        to = request.query_params.get("to") or None
        try:
            after = int(request.query_params.get("after", "0"))
            wait = min(float(request.query_params.get("wait", "0")), MAX_WAIT_SECONDS)
        except ValueError:
            return JSONResponse({"error": "after/wait must be numbers"}, status_code=400)
        found = state.find(to=to, after=after)
        if not found and wait > 0:
            deadline = time.monotonic() + wait
            async with state.changed:
                while not (found := state.find(to=to, after=after)):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(state.changed.wait(), timeout=remaining)
        last = state.messages[-1].seq if state.messages else 0
        return JSONResponse({"messages": [m.summary() for m in found], "last_seq": last})

    async def clear_messages(_request: Request) -> Response:
        state.messages.clear()
        return Response(status_code=204)

    async def add_fault(request: Request) -> Response:
        try:
            spec = await request.json()
            status = int(spec.get("status", 500))
            code = int(spec["code"]) if spec.get("code") is not None else None
            count = max(1, int(spec.get("count", 1)))
            async_error = int(spec["async_error"]) if spec.get("async_error") else None
        except (ValueError, TypeError, AttributeError, KeyError):
            return JSONResponse({"error": "expected {status, code?, count?, to?}"}, 400)
        if not 400 <= status <= 599 or len(state.faults) >= MAX_FAULTS:
            return JSONResponse({"error": "status must be 4xx/5xx; too many faults"}, 400)
        retry_after = spec.get("retry_after")
        fault = Fault(
            status=status,
            code=code,
            remaining=count,
            message=spec.get("message"),
            to=spec.get("to"),
            retry_after=str(retry_after) if retry_after is not None else None,
            async_error=async_error,
        )
        state.faults.append(fault)
        return JSONResponse(dataclasses.asdict(fault), status_code=201)

    async def clear_faults(_request: Request) -> Response:
        state.faults.clear()
        return Response(status_code=204)

    def media_reference(request: Request, media_id: str) -> str:
        if cfg.provider in ("meta", "360dialog"):
            return media_id
        return str(request.url_for("public_media", media_id=media_id))

    async def upload_media(request: Request) -> Response:
        try:
            spec = await request.json()
            data = base64.b64decode(spec["data_b64"], validate=True)
            content_type = str(spec.get("content_type") or "application/octet-stream")
            fail_first = max(0, int(spec.get("fail_first", 0)))
            fail_status = int(spec.get("fail_status", 503))
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse({"error": "expected {content_type, data_b64}"}, 400)
        if len(data) > MAX_MEDIA_BYTES:
            return JSONResponse({"error": "media too large"}, 413)
        media_id = state.add_media(content_type, data)
        state.media[media_id].fail_first = fail_first
        state.media[media_id].fail_status = fail_status
        return JSONResponse({"id": media_id, "ref": media_reference(request, media_id)}, 201)

    async def media_stats(request: Request) -> Response:
        media = state.media.get(request.path_params["media_id"])
        if media is None:
            return JSONResponse({"error": "unknown media"}, 404)
        return JSONResponse(
            {"fetches": media.fetches, "unauthorized": media.unauthorized, "size": len(media.data)}
        )

    async def inbound(request: Request) -> Response:
        """An infringer writes: post an authenticated message webhook to the service."""
        try:
            spec = await request.json()
            sender = str(spec["from"])
            media = None
            items = list(spec.get("media") or [])
            if items:
                item = items[0]
                data = base64.b64decode(item["data_b64"], validate=True)
                content_type = str(item.get("content_type") or "application/octet-stream")
                if len(data) > MAX_MEDIA_BYTES:
                    return JSONResponse({"error": "media too large"}, 413)
                media_id = state.add_media(content_type, data)
                media = (media_reference(request, media_id), content_type, item.get("filename"))
            location = spec.get("location")
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse({"error": "expected {from, body?, media?: [...]}"}, 400)
        if not digits(sender) or len(digits(sender)) < 8:
            return JSONResponse({"error": "from must be a phone (+55…)"}, 400)
        payload = build_message_payload(
            cfg,
            sender=sender,
            body=str(spec.get("body") or ""),
            message_id=spec.get("message_id"),
            profile_name=spec.get("profile_name"),
            media=media,
            location=(float(location["latitude"]), float(location["longitude"]))
            if location
            else None,
        )
        status = await post_webhook(payload)
        return JSONResponse({"status": status, "payload": payload})

    async def push_status(request: Request) -> Response:
        """Send a status webhook for a recorded message now (any order, any status)."""
        try:
            spec = await request.json()
            message = state.by_id(str(spec["id"]))
            status = str(spec["status"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "expected {id, status}"}, 400)
        if message is None:
            return JSONResponse({"error": "unknown message"}, 404)
        payload = build_status_payload(
            cfg,
            message_id=message.id,
            to=message.to,
            status=status,
            error_code=spec.get("error_code"),
            error_message=spec.get("error_message"),
            reference_id=message.reference_id,
        )
        code = await post_webhook(payload)
        return JSONResponse({"status": code, "payload": payload})

    routes = [
        Route("/_sim", info, methods=["GET"]),
        Route("/_sim/messages", list_messages, methods=["GET"]),
        Route("/_sim/messages", clear_messages, methods=["DELETE"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/media", upload_media, methods=["POST"]),
        Route("/_sim/media/{media_id}/stats", media_stats, methods=["GET"]),
        Route("/_sim/files/{media_id}", public_media, methods=["GET"], name="public_media"),
        Route("/_sim/inbound", inbound, methods=["POST"]),
        Route("/_sim/status", push_status, methods=["POST"]),
    ]
    if cfg.provider == "meta":
        routes += [
            Route(f"/{GRAPH_VERSION}/{{pnid}}/messages", cloud_send, methods=["POST"]),
            Route(f"/{GRAPH_VERSION}/{{media_id}}", cloud_media_info, methods=["GET"]),
            Route("/whatsapp_business/attachments/", cloud_media_file, methods=["GET"]),
        ]
    elif cfg.provider == "360dialog":
        routes += [
            Route("/messages", cloud_send, methods=["POST"]),
            Route("/whatsapp_business/attachments/", cloud_media_file, methods=["GET"]),
            Route("/{media_id}", cloud_media_info, methods=["GET"]),
        ]
    elif cfg.provider == "zapi":
        routes.append(
            Route("/instances/{instance}/token/{token}/{action:path}", zapi_send, methods=["POST"])
        )
    else:
        routes.append(Route("/{instance}/messages/{kind}", ultramsg_send, methods=["POST"]))
    return Starlette(routes=routes, lifespan=lifespan)


class SimulatorThread:
    """The simulator served by uvicorn on a loopback port, in a thread of its own (tests)."""

    def __init__(self, config: SimConfig, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", lifespan="on")
        )
        self._thread = threading.Thread(
            target=self._run, name=f"{config.provider}-simulator", daemon=True
        )

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the provider simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def api_base(provider: str, sim_url: str) -> str:
    """What the service's *_BASE_URL / META_GRAPH_URL must be to use a simulator at sim_url."""
    return f"{sim_url.rstrip('/')}/{GRAPH_VERSION}" if provider == "meta" else sim_url.rstrip("/")


def main(provider: str, argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=f"Local {provider}-compatible WhatsApp server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORTS[provider])
    parser.add_argument("--webhook-base", default="http://127.0.0.1:8000")
    parser.add_argument("--number", default=SimConfig.number)
    parser.add_argument("--callback-delay", type=float, default=0.2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = SimConfig(
        provider=provider,
        webhook_base=args.webhook_base,
        number=args.number,
        callback_delay_seconds=args.callback_delay,
    )
    log.info(
        "%s simulator on http://%s:%s, webhooks to %s%s",
        provider,
        args.host,
        args.port,
        args.webhook_base,
        webhook_path(config),
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level="info")
