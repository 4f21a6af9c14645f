"""What every provider's HTTP sender shares: one client per event loop, refusals as
ChannelDeliveryError (429/5xx and network errors retried, Retry-After honoured)."""

from __future__ import annotations

import asyncio
import datetime as dt
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from api.errors import ChannelDeliveryError
from api.web.logging import install_log_redaction

SEND_TIMEOUT = httpx.Timeout(20.0, connect=5.0)


class LoopClient:
    """An httpx client for the running event loop (a client belongs to the loop it was made in)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # httpx logs every request URL at INFO, and Z-API's carries the instance token: masked
        # in whichever process sends (the worker builds no app).
        install_log_redaction()

    def get(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = httpx.AsyncClient(timeout=SEND_TIMEOUT)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._loop is asyncio.get_running_loop():
            await self._client.aclose()
        self._client = self._loop = None


async def request(
    client: LoopClient, method: str, url: str, *, label: str, **kwargs: Any
) -> httpx.Response:
    """One call to a provider; a network failure is a retryable ChannelDeliveryError."""
    try:
        return await client.get().request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ChannelDeliveryError(
            f"falha de rede ao falar com {label} ({type(exc).__name__})", retryable=True
        ) from exc


def json_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {"items": body}


def refusal(
    response: httpx.Response,
    *,
    label: str,
    code: str | None,
    message: str,
    retryable_codes: frozenset[str] = frozenset(),
) -> ChannelDeliveryError:
    """A provider's refusal: 429, 5xx and the provider's own transient codes are retried."""
    status = response.status_code
    retryable = status == 429 or status >= 500 or (code is not None and code in retryable_codes)
    head = f"{label} {status}" + (f" (erro {code})" if code else "")
    return ChannelDeliveryError(
        f"{head}: {message}"[:500],
        retryable=retryable,
        provider_code=code,
        retry_after_seconds=parse_retry_after(response.headers.get("retry-after")),
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
