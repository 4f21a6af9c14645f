"""A local, in-memory server that speaks the part of Twilio's wire format Tratativa uses.

- `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`: the Messages resource as the twilio
  library calls it (form fields, HTTP basic auth), answering Twilio's JSON; accepted messages are
  recorded and get signed status callbacks (sent, then delivered) on their StatusCallback.
- `/_sim/…`: a control API for tests, demos and `tratativa chat` — fault injection, the list of
  recorded messages (with long polling), media hosting, and an "infringer writes" helper that
  posts a signed message webhook to the service.

Run it: `python -m api.devtools.twilio_simulator --port 8099 --webhook-base http://127.0.0.1:8000`
and point the service at it with TWILIO_API_BASE_URL=http://127.0.0.1:8099 and the same
TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN. Single process, bounded memory, not for production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import dataclasses
import datetime as dt
import email.utils
import hmac
import itertools
import logging
import secrets
import socket
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

log = logging.getLogger("twilio_simulator")

DEV_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEV_AUTH_TOKEN = "dev-twilio-auth-token"
# Twilio's WhatsApp sandbox number, so demo messages look like the real thing.
DEV_WHATSAPP_NUMBER = "whatsapp:+14155238886"
MESSAGE_WEBHOOK_PATH = "/webhooks/twilio/whatsapp"
API_VERSION = "2010-04-01"

MAX_MESSAGES = 10_000
MAX_MEDIA_ITEMS = 256
MAX_MEDIA_TOTAL_BYTES = 128 * 1024 * 1024
MAX_MEDIA_BYTES = 32 * 1024 * 1024
MAX_FAULT_DELAY_SECONDS = 30.0
MAX_BODY_BYTES = 48 * 1024 * 1024  # a base64 media upload of MAX_MEDIA_BYTES fits
WEBHOOK_TIMEOUT = aiohttp.ClientTimeout(total=20.0, connect=5.0)
MAX_WAIT_SECONDS = 30.0
KEEPALIVE_SECONDS = 2.0
MAX_FAULTS = 100
# Twilio's WhatsApp body limit: a longer Body is refused with 21617 (counted in characters).
MAX_BODY_CHARS = 1600
_TWILIO_ERRORS = {
    20003: "Authenticate",
    21211: "Invalid 'To' Phone Number",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    21619: "A text message body or media url must be specified.",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
}
_E164_RE_CHARS = frozenset("+0123456789")


@dataclass(frozen=True)
class SimConfig:
    account_sid: str = DEV_ACCOUNT_SID
    auth_token: str = DEV_AUTH_TOKEN
    whatsapp_number: str = DEV_WHATSAPP_NUMBER
    # Where the service listens, and the public URL it believes it has (PUBLIC_BASE_URL); the
    # webhook is signed for the latter, as Twilio signs for the URL configured in its console.
    webhook_base: str = "http://127.0.0.1:8000"
    public_base: str | None = None
    callback_delay_seconds: float = 0.2
    read_receipts: bool = False

    @property
    def signed_base(self) -> str:
        return (self.public_base or self.webhook_base).rstrip("/")


@dataclass
class Fault:
    status: int
    code: int
    remaining: int
    message: str | None = None
    to: str | None = None  # only requests to this address
    delay_seconds: float = 0.0  # hold the request this long before answering (a slow Twilio)
    retry_after: str | None = None  # a Retry-After header on the answer (seconds or HTTP-date)


@dataclass
class SimMessage:
    seq: int
    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    content_sid: str | None
    content_variables: str | None
    status_callback: str | None
    media_url: list[str]
    status: str
    date_created: dt.datetime
    received_at: float  # time.time() when accepted
    callbacks: list[dict[str, Any]] = field(default_factory=list)

    def resource(self, account_sid: str) -> dict[str, Any]:
        """Twilio's JSON representation of a Message resource."""
        created = email.utils.format_datetime(self.date_created)
        uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{self.sid}"
        return {
            "account_sid": account_sid,
            "api_version": API_VERSION,
            "body": self.body,
            "date_created": created,
            "date_sent": None,
            "date_updated": created,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "num_media": str(len(self.media_url)),
            "num_segments": "1",
            "price": None,
            "price_unit": None,
            "sid": self.sid,
            "status": self.status,
            "subresource_uris": {"media": f"{uri}/Media.json"},
            "to": self.to,
            "uri": f"{uri}.json",
        }

    def summary(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "sid": self.sid,
            "to": self.to,
            "from": self.from_,
            "messaging_service_sid": self.messaging_service_sid,
            "body": self.body,
            "content_sid": self.content_sid,
            "content_variables": self.content_variables,
            "status_callback": self.status_callback,
            "media_url": self.media_url,
            "status": self.status,
            "date_created": self.date_created.isoformat(),
            "received_at": self.received_at,
            "callbacks": list(self.callbacks),
        }


@dataclass
class Media:
    content_type: str
    data: bytes
    secret: str
    fetches: int = 0
    unauthorized: int = 0
    # Fault injection: the next `fail_first` fetches answer `fail_status` (a flaky provider).
    fail_first: int = 0
    fail_status: int = 503


class SimState:
    """Everything the simulator remembers, bounded."""

    def __init__(self) -> None:
        self.messages: deque[SimMessage] = deque(maxlen=MAX_MESSAGES)
        self.faults: list[Fault] = []
        self.media: OrderedDict[str, Media] = OrderedDict()
        self.media_bytes = 0
        self.requests = 0
        self.rejected = 0
        self._seq = itertools.count(1)
        self.changed = asyncio.Condition()

    def next_seq(self) -> int:
        return next(self._seq)

    def take_fault(self, to: str) -> Fault | None:
        for fault in self.faults:
            if fault.to is None or _same_address(fault.to, to):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def add_media(self, content_type: str, data: bytes) -> str:
        media_id = "ME" + secrets.token_hex(16)
        self.media[media_id] = Media(content_type, data, secrets.token_urlsafe(16))
        self.media_bytes += len(data)
        while self.media and (
            len(self.media) > MAX_MEDIA_ITEMS or self.media_bytes > MAX_MEDIA_TOTAL_BYTES
        ):
            _, dropped = self.media.popitem(last=False)
            self.media_bytes -= len(dropped.data)
        return media_id

    def find(self, *, to: str | None, after: int) -> list[SimMessage]:
        return [
            m for m in self.messages if m.seq > after and (to is None or _same_address(to, m.to))
        ]


def new_sid(prefix: str = "SM") -> str:
    return prefix + secrets.token_hex(16)


def sign(url: str, params: Mapping[str, str], auth_token: str) -> str:
    """X-Twilio-Signature for a form POSTed to `url`, as Twilio computes it."""
    return str(RequestValidator(auth_token).compute_signature(url, dict(params)))


def build_inbound_form(
    *,
    account_sid: str,
    to: str,
    sender: str,
    body: str = "",
    message_sid: str | None = None,
    profile_name: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    location: Mapping[str, str] | None = None,
    button_text: str | None = None,
    button_payload: str | None = None,
) -> dict[str, str]:
    """The form Twilio posts for an incoming WhatsApp message. `media` is (url, content type)."""
    phone = _bare(sender)
    sid = message_sid or new_sid("MM" if media else "SM")
    if location:
        message_type = "location"
    elif button_text:
        message_type = "button"
    elif media:
        message_type = media[0][1].split("/")[0] if media[0][1] else "document"
    else:
        message_type = "text"
    form: dict[str, str] = {
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name or "Infrator Teste",
        "MessageType": message_type,
        "SmsSid": sid,
        "WaId": phone.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": _whatsapp(to),
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": _whatsapp(phone),
        "ApiVersion": API_VERSION,
    }
    for index, (url, content_type) in enumerate(media):
        form[f"MediaContentType{index}"] = content_type
        form[f"MediaUrl{index}"] = url
    if location:
        form["Latitude"] = str(location["latitude"])
        form["Longitude"] = str(location["longitude"])
        for key in ("address", "label"):
            if location.get(key):
                form[key.capitalize()] = str(location[key])
    if button_text:
        form["ButtonText"] = button_text
        form["ButtonPayload"] = button_payload or button_text
    return form


def create_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app."""
    cfg = config or SimConfig()
    state = SimState()
    holder: dict[str, aiohttp.ClientSession] = {}
    background: set[asyncio.Task[None]] = set()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # aiohttp rather than httpx for the webhooks this server posts: under `make bench` this
        # process shares two cores with the service it measures, and httpx's client took half of
        # its CPU (py-spy); aiohttp (already installed, the twilio library's client) about a third.
        # Idle connections are dropped well before uvicorn's 5 s keep-alive ends, so a post
        # rarely goes out on a connection the service is closing; when one does, post() tries once more.
        holder["http"] = aiohttp.ClientSession(
            timeout=WEBHOOK_TIMEOUT,
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
        )
        try:
            yield
        finally:
            for task in list(background):
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await holder["http"].close()

    async def post(url: str, form: dict[str, str], signed_url: str) -> tuple[int, str]:
        """POST a signed webhook form; (status, body).

        A connection that fails before any answer (a kept-alive one the server closed as we
        wrote, a reset) is tried once more, as HTTP clients do with stale pooled connections;
        our webhooks are idempotent on MessageSid, so a second delivery is harmless. A timeout
        is not retried: the service may still be working on it.
        """
        headers = {
            "X-Twilio-Signature": sign(signed_url, form, cfg.auth_token),
            "User-Agent": "TwilioProxy/1.1",
        }
        for attempt in (1, 2):
            try:
                async with holder["http"].post(url, data=form, headers=headers) as response:
                    return response.status, await response.text(errors="replace")
            except aiohttp.ClientConnectionError as exc:
                if attempt == 2 or isinstance(exc, TimeoutError):
                    raise
                log.info("webhook post to %s failed before an answer (%r); retrying", url, exc)
        raise AssertionError("unreachable")

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, cfg.account_sid) and hmac.compare_digest(
            password, cfg.auth_token
        )

    async def create_message(request: Request) -> Response:
        state.requests += 1
        account_sid = request.path_params["account_sid"]
        if not authorized(request) or account_sid != cfg.account_sid:
            state.rejected += 1
            return twilio_error(401, 20003)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return twilio_error(413, 20500, "Request too large")
        form: dict[str, list[str]] = {}
        for key, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            form.setdefault(key, []).append(value)

        def one(key: str) -> str | None:
            values = form.get(key)
            return values[0] if values else None

        to = one("To") or ""
        fault = state.take_fault(to)
        if fault is not None:
            state.rejected += 1
            if fault.delay_seconds:
                await asyncio.sleep(fault.delay_seconds)
            return twilio_error(
                fault.status, fault.code, fault.message, retry_after=fault.retry_after
            )
        from_, service = one("From"), one("MessagingServiceSid")
        text, content_sid = one("Body") or "", one("ContentSid")
        media_url = form.get("MediaUrl", [])
        if not to:
            return twilio_error(400, 21604)
        if not _valid_address(to):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to}")
        if not from_ and not service:
            return twilio_error(400, 21603)
        if not text and not content_sid and not media_url:
            return twilio_error(400, 21619)
        if len(text) > MAX_BODY_CHARS:
            return twilio_error(400, 21617)
        message = SimMessage(
            seq=state.next_seq(),
            sid=new_sid("MM" if media_url else "SM"),
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=text,
            content_sid=content_sid,
            content_variables=one("ContentVariables"),
            status_callback=one("StatusCallback"),
            media_url=media_url,
            # With a Messaging Service Twilio answers "accepted" until it picks a sender.
            status="queued" if from_ else "accepted",
            date_created=dt.datetime.now(dt.UTC).replace(microsecond=0),
            received_at=time.time(),
        )
        state.messages.append(message)
        async with state.changed:
            state.changed.notify_all()
        if message.status_callback:
            task = asyncio.create_task(send_callbacks(message))
            background.add(task)
            task.add_done_callback(background.discard)
        return JSONResponse(message.resource(cfg.account_sid), status_code=201)

    async def send_callbacks(message: SimMessage) -> None:
        statuses = ["sent", "delivered"] + (["read"] if cfg.read_receipts else [])
        for status in statuses:
            await asyncio.sleep(cfg.callback_delay_seconds)
            message.status = status
            params = {
                "AccountSid": cfg.account_sid,
                "ApiVersion": API_VERSION,
                "ChannelPrefix": "whatsapp",
                "ChannelToAddress": _bare(message.to),
                "From": message.from_ or cfg.whatsapp_number,
                "MessageSid": message.sid,
                "MessageStatus": status,
                "SmsSid": message.sid,
                "SmsStatus": status,
                "To": message.to,
            }
            url = message.status_callback or ""
            outcome: dict[str, Any] = {"status": status}
            try:
                outcome["http_status"], _ = await post(url, params, url)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                outcome["error"] = type(exc).__name__
                log.warning("status callback %s for %s failed: %r", status, message.sid, exc)
            message.callbacks.append(outcome)

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
            code = int(spec.get("code") or _default_code(status))
            count = max(1, int(spec.get("count", 1)))
            delay = min(MAX_FAULT_DELAY_SECONDS, max(0.0, float(spec.get("delay_seconds", 0))))
        except (ValueError, TypeError, AttributeError):
            return JSONResponse(
                {"error": "expected {status, code?, count?, to?, delay_seconds?, retry_after?}"},
                400,
            )
        if not 400 <= status <= 599 or len(state.faults) >= MAX_FAULTS:
            return JSONResponse({"error": "status must be 4xx/5xx; too many faults"}, 400)
        retry_after = spec.get("retry_after")
        fault = Fault(
            status,
            code,
            count,
            spec.get("message"),
            spec.get("to"),
            delay,
            str(retry_after) if retry_after is not None else None,
        )
        state.faults.append(fault)
        return JSONResponse(dataclasses.asdict(fault), status_code=201)

    async def clear_faults(_request: Request) -> Response:
        state.faults.clear()
        return Response(status_code=204)

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
            return JSONResponse({"error": f"media larger than {MAX_MEDIA_BYTES} bytes"}, 413)
        media_id = state.add_media(content_type, data)
        state.media[media_id].fail_first = fail_first
        state.media[media_id].fail_status = fail_status
        return JSONResponse({"id": media_id, "url": media_url(request, media_id)}, 201)

    def media_url(request: Request, media_id: str) -> str:
        return str(request.url_for("media", media_id=media_id))

    async def get_media(request: Request) -> Response:
        # Like Twilio: the media URL needs the account's credentials, then redirects to storage.
        media = state.media.get(request.path_params["media_id"])
        if media is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        if not authorized(request):
            media.unauthorized += 1
            return twilio_error(401, 20003)
        media.fetches += 1
        if media.fail_first > 0:
            media.fail_first -= 1
            return twilio_error(media.fail_status, 20500, "Simulated media failure")
        target = request.url_for(
            "media_storage", media_id=request.path_params["media_id"], secret=media.secret
        )
        return RedirectResponse(str(target), status_code=307)

    async def get_media_storage(request: Request) -> Response:
        media = state.media.get(request.path_params["media_id"])
        if media is None or not hmac.compare_digest(media.secret, request.path_params["secret"]):
            return Response(status_code=403)
        return Response(media.data, media_type=media.content_type)

    async def media_stats(request: Request) -> Response:
        media = state.media.get(request.path_params["media_id"])
        if media is None:
            return JSONResponse({"error": "unknown media"}, 404)
        return JSONResponse(
            {
                "content_type": media.content_type,
                "size": len(media.data),
                "fetches": media.fetches,
                "unauthorized": media.unauthorized,
            }
        )

    async def inbound(request: Request) -> Response:
        """An infringer writes: post a signed message webhook to the service."""
        try:
            spec = await request.json()
            sender = str(spec["from"])
            media_specs = list(spec.get("media") or [])
            media = []
            for item in media_specs:
                data = base64.b64decode(item["data_b64"], validate=True)
                content_type = str(item.get("content_type") or "application/octet-stream")
                if len(data) > MAX_MEDIA_BYTES:
                    return JSONResponse({"error": "media too large"}, 413)
                media.append(
                    (media_url(request, state.add_media(content_type, data)), content_type)
                )
        except (ValueError, KeyError, TypeError, binascii.Error):
            return JSONResponse({"error": "expected {from, body?, media?: [...]}"}, 400)
        if not _valid_address(sender):
            return JSONResponse({"error": "from must be an E.164 phone (+55…)"}, 400)
        form = build_inbound_form(
            account_sid=cfg.account_sid,
            to=str(spec.get("to") or cfg.whatsapp_number),
            sender=sender,
            body=str(spec.get("body") or ""),
            message_sid=spec.get("message_sid"),
            profile_name=spec.get("profile_name"),
            media=media,
            location=spec.get("location"),
            button_text=spec.get("button_text"),
            button_payload=spec.get("button_payload"),
        )
        signed_url = cfg.signed_base + MESSAGE_WEBHOOK_PATH
        target = cfg.webhook_base.rstrip("/") + MESSAGE_WEBHOOK_PATH
        started = time.time()
        try:
            status, text = await post(target, form, signed_url)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return JSONResponse(
                {"message_sid": form["MessageSid"], "status": None, "error": repr(exc)}, 502
            )
        return JSONResponse(
            {
                "message_sid": form["MessageSid"],
                "status": status,
                "response": text[:500],
                "posted_at": started,
                "elapsed_ms": round((time.time() - started) * 1000, 1),
            }
        )

    async def info(_request: Request) -> Response:
        return JSONResponse(
            {
                "account_sid": cfg.account_sid,
                "whatsapp_number": cfg.whatsapp_number,
                "webhook_base": cfg.webhook_base,
                "signed_base": cfg.signed_base,
                "messages": len(state.messages),
                "last_seq": state.messages[-1].seq if state.messages else 0,
                "requests": state.requests,
                "rejected": state.rejected,
                "faults": [dataclasses.asdict(f) for f in state.faults],
            }
        )

    routes = [
        Route(
            f"/{API_VERSION}/Accounts/{{account_sid}}/Messages.json",
            create_message,
            methods=["POST"],
        ),
        Route("/_sim", info, methods=["GET"]),
        Route("/_sim/messages", list_messages, methods=["GET"]),
        Route("/_sim/messages", clear_messages, methods=["DELETE"]),
        Route("/_sim/faults", add_fault, methods=["POST"]),
        Route("/_sim/faults", clear_faults, methods=["DELETE"]),
        Route("/_sim/media", upload_media, methods=["POST"]),
        Route("/_sim/media/{media_id}", get_media, methods=["GET"], name="media"),
        Route("/_sim/media/{media_id}/stats", media_stats, methods=["GET"]),
        Route(
            "/_sim/storage/{media_id}/{secret}",
            get_media_storage,
            methods=["GET"],
            name="media_storage",
        ),
        Route("/_sim/inbound", inbound, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sim = state
    app.state.config = cfg
    return app


def twilio_error(
    status: int, code: int, message: str | None = None, *, retry_after: str | None = None
) -> JSONResponse:
    """Twilio's REST error body (with Retry-After when given, as on a 429)."""
    return JSONResponse(
        {
            "code": code,
            "message": message or _TWILIO_ERRORS.get(code, "Error"),
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
        headers={"Retry-After": retry_after} if retry_after is not None else None,
    )


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
        self._thread = threading.Thread(target=self._run, name="twilio-simulator", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> SimulatorThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Twilio simulator did not start")
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


def run(
    *,
    host: str = "127.0.0.1",
    port: int = 8099,
    config: SimConfig | None = None,
) -> None:
    """Serve the simulator until interrupted."""
    cfg = config or SimConfig()
    log.info(
        "Twilio simulator on http://%s:%s (account %s), webhooks to %s",
        host,
        port,
        cfg.account_sid,
        cfg.webhook_base,
    )
    # No access log: the service logs every request it receives from here, and under the
    # benchmark's load this process's own lines cost more CPU than its work (it shares the
    # machine with the service it measures).
    uvicorn.run(create_app(cfg), host=host, port=port, log_level="info", access_log=False)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Twilio-compatible server (WhatsApp).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument(
        "--webhook-base", default="http://127.0.0.1:8000", help="where the service listens"
    )
    parser.add_argument(
        "--public-base", default=None, help="the service's PUBLIC_BASE_URL, if different"
    )
    parser.add_argument("--account-sid", default=DEV_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEV_AUTH_TOKEN)
    parser.add_argument("--whatsapp-number", default=DEV_WHATSAPP_NUMBER)
    parser.add_argument("--callback-delay", type=float, default=0.2)
    parser.add_argument("--read-receipts", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run(
        host=args.host,
        port=args.port,
        config=SimConfig(
            account_sid=args.account_sid,
            auth_token=args.auth_token,
            whatsapp_number=_whatsapp(args.whatsapp_number),
            webhook_base=args.webhook_base,
            public_base=args.public_base,
            callback_delay_seconds=args.callback_delay,
            read_receipts=args.read_receipts,
        ),
    )


def _bare(address: str) -> str:
    return address.strip().removeprefix("whatsapp:")


def _whatsapp(address: str) -> str:
    return "whatsapp:" + _bare(address)


def _same_address(a: str, b: str) -> bool:
    return _bare(a) == _bare(b)


def _valid_address(address: str) -> bool:
    number = _bare(address)
    return (
        number.startswith("+")
        and 8 <= len(number) <= 16
        and set(number) <= _E164_RE_CHARS
        and "+" not in number[1:]
        and number[1] != "0"
    )


def _default_code(status: int) -> int:
    return {429: 20429, 401: 20003}.get(status, 20500 if status >= 500 else 21211)


if __name__ == "__main__":
    main()
