"""Sending WhatsApp messages through Twilio's REST API with the twilio library's async client.

TWILIO_API_BASE_URL points the library at a Twilio-compatible server (the local simulator in
development and tests): every request for a *.twilio.com host is rewritten to that base.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
from contextvars import ContextVar
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from api.config import Settings
from api.conversations.models import Channel, DeliveryStatus
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult

log = logging.getLogger(__name__)

DEFAULT_API_BASE_URL = "https://api.twilio.com"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
REQUEST_TIMEOUT_SECONDS = 20.0
WHATSAPP_PREFIX = "whatsapp:"

# The status in Twilio's answer to a create (before any callback).
_CREATE_STATUS = {
    "queued": DeliveryStatus.QUEUED,
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
}


# The headers of the last answer Twilio gave to the current send (the library's exceptions drop
# them, and Retry-After is among them). Each send sets its own dict: concurrent sends share the
# client, never this variable.
_ANSWER_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("twilio_answer", default=None)


class BaseUrlHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """The library's aiohttp client, sending Twilio API calls to another base URL.

    It also applies the client-wide timeout, which AsyncTwilioHttpClient.request ignores when a
    call passes none (aiohttp would then wait for ever).
    """

    def __init__(self, *, api_base_url: str, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        super().__init__(pool_connections=True, timeout=timeout)
        self._base = urlsplit(api_base_url.rstrip("/"))

    def rewrite(self, url: str) -> str:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not (host == "twilio.com" or host.endswith(".twilio.com")):
            return url
        return urlunsplit(
            (
                self._base.scheme,
                self._base.netloc,
                self._base.path + parts.path,
                parts.query,
                parts.fragment,
            )
        )

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        if auth is not None:
            # aiohttp deprecates its `auth=` argument (gone in 4.0): send the header ourselves.
            headers = {**(headers or {}), "Authorization": _basic_auth(*auth)}
        response = await super().request(
            method,
            self.rewrite(url),
            params=params,
            data=data,
            headers=headers,
            auth=None,
            timeout=timeout if timeout is not None else self.timeout,
            allow_redirects=allow_redirects,
        )
        answer = _ANSWER_HEADERS.get()
        if answer is not None:
            answer.clear()
            answer.update({str(k).lower(): str(v) for k, v in (response.headers or {}).items()})
        return response


class TwilioWhatsAppSender:
    """The outbox's WhatsApp sender (api.outbox.senders.ChannelSender)."""

    channel = Channel.WHATSAPP

    def __init__(
        self,
        *,
        account_sid: str | None,
        auth_token: str | None,
        whatsapp_from: str | None,
        messaging_service_sid: str | None,
        status_callback_url: str | None,
        api_base_url: str = DEFAULT_API_BASE_URL,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.account_sid = account_sid
        self._auth_token = auth_token
        self.whatsapp_from = whatsapp_address(whatsapp_from) if whatsapp_from else None
        self.messaging_service_sid = messaging_service_sid
        self.status_callback_url = status_callback_url
        self.api_base_url = api_base_url
        self._timeout = timeout
        # aiohttp sessions belong to one event loop: the client is built in the loop that sends.
        self._client: Any = None
        self._http: BaseUrlHttpClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioWhatsAppSender:
        twilio = settings.twilio
        return cls(
            account_sid=twilio.account_sid,
            auth_token=twilio.auth_token.get_secret_value() if twilio.auth_token else None,
            whatsapp_from=twilio.whatsapp_from,
            messaging_service_sid=twilio.messaging_service_sid,
            status_callback_url=settings.public_base_url.rstrip("/") + STATUS_CALLBACK_PATH,
            api_base_url=twilio.api_base_url,
        )

    @property
    def configured(self) -> bool:
        return bool(
            self.account_sid
            and self._auth_token
            and (self.whatsapp_from or self.messaging_service_sid)
        )

    async def send(self, envelope: Envelope) -> SendResult:
        if not self.configured:
            raise ChannelDeliveryError(
                "Twilio não configurado (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN e "
                "TWILIO_WHATSAPP_FROM ou TWILIO_MESSAGING_SERVICE_SID).",
                retryable=True,
            )
        kwargs = self.create_arguments(envelope)
        answer: dict[str, str] = {}
        token = _ANSWER_HEADERS.set(answer)
        try:
            message = await self._twilio().messages.create_async(**kwargs)
        except TwilioRestException as exc:
            raise delivery_error(
                exc.status, exc.code, str(exc.msg), retry_after=answer.get("retry-after")
            ) from exc
        except TwilioServiceException as exc:
            raise delivery_error(
                exc.status,
                exc.code,
                str(exc.detail or exc.title),
                retry_after=answer.get("retry-after"),
            ) from exc
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise ChannelDeliveryError(
                f"falha de rede ao falar com o Twilio ({type(exc).__name__})", retryable=True
            ) from exc
        finally:
            _ANSWER_HEADERS.reset(token)
        sid = getattr(message, "sid", None)
        if not sid:
            # Accepted without an id we could track: retrying might send it twice.
            raise ChannelDeliveryError(
                "o Twilio aceitou a mensagem sem devolver o SID", retryable=False
            )
        status = _CREATE_STATUS.get(
            str(getattr(message, "status", "") or ""), DeliveryStatus.QUEUED
        )
        return SendResult(provider_id=str(sid), status=status)

    def create_arguments(self, envelope: Envelope) -> dict[str, Any]:
        """The keyword arguments of messages.create for an envelope."""
        kwargs: dict[str, Any] = {"to": whatsapp_address(envelope.to)}
        # The number the infringer wrote to (one of ours: it came in a signed webhook), else ours.
        sender = whatsapp_address(envelope.sender) if envelope.sender else self.whatsapp_from
        if sender:
            kwargs["from_"] = sender
        if self.messaging_service_sid:
            kwargs["messaging_service_sid"] = self.messaging_service_sid
        if envelope.content_sid:
            # An approved template: Twilio renders it; the stored text is our own rendering.
            kwargs["content_sid"] = envelope.content_sid
            if envelope.content_variables:
                kwargs["content_variables"] = json.dumps(
                    envelope.content_variables, ensure_ascii=False
                )
        else:
            kwargs["body"] = envelope.text
        media_urls = [a["url"] for a in envelope.attachments if a.get("url")]
        if media_urls:
            kwargs["media_url"] = media_urls
        elif envelope.attachments:
            log.warning(
                "message %s: attachments without a public URL are not sent on WhatsApp",
                envelope.message_id,
            )
        if self.status_callback_url:
            # Our message id rides in the (signed) callback URL: a callback that arrives before
            # we stored Twilio's SID still finds its message.
            kwargs["status_callback"] = f"{self.status_callback_url}?mid={envelope.message_id}"
        return kwargs

    async def aclose(self) -> None:
        if self._http is not None and self._loop is asyncio.get_running_loop():
            await self._http.close()
        self._client = self._http = self._loop = None

    def _twilio(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._http = BaseUrlHttpClient(api_base_url=self.api_base_url, timeout=self._timeout)
            self._client = Client(self.account_sid, self._auth_token, http_client=self._http)
            self._loop = loop
        return self._client


def _basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def whatsapp_address(value: str) -> str:
    """'+5511…' or 'whatsapp:+5511…' → 'whatsapp:+5511…'."""
    value = value.strip()
    return value if value.startswith(WHATSAPP_PREFIX) else WHATSAPP_PREFIX + value


def delivery_error(
    status: int, code: int | None, message: str, *, retry_after: str | None = None
) -> ChannelDeliveryError:
    """Twilio's refusal as our error: 429 and 5xx are worth retrying, other 4xx are final; a
    Retry-After it sent is the earliest the outbox may try again."""
    retryable = status == 429 or status >= 500
    label = f"Twilio {status}" + (f" (erro {code})" if code else "")
    return ChannelDeliveryError(
        f"{label}: {message}"[:500],
        retryable=retryable,
        provider_code=str(code) if code is not None else None,
        retry_after_seconds=parse_retry_after(retry_after),
    )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())
