"""Downloading a file a WhatsApp provider referenced, size-limited and SSRF-safe.

A webhook can name any URL, so every hop is checked before it is requested: the provider's API
origin as the operator configured it (the local simulator in development and tests), or https
on one of the provider's media hosts that resolves to public addresses only. A file that cannot
be fetched comes back as a refusal (retryable for timeouts, network errors, 5xx and 429).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mimetypes
import socket
from collections.abc import Mapping, Sequence

import httpx

from api.conversations.inbound import InboundAttachment
from api.errors import AppError
from api.storage import sniff_content_type

log = logging.getLogger(__name__)

MEDIA_TIMEOUT = httpx.Timeout(8.0, connect=4.0)
BUDGET_SECONDS = 10.0
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 3


class ProviderMediaRefused(AppError):
    """A media URL (or a redirect from it) we will not request: final, never retried."""

    code = "media_url_refused"
    status_code = 400


def origin(url: str) -> tuple[str, str, int]:
    parsed = httpx.URL(url)
    return (
        parsed.scheme,
        (parsed.host or "").lower(),
        parsed.port or (443 if parsed.scheme == "https" else 80),
    )


async def check_url(url: str, *, trusted: Sequence[str], hosts: Sequence[str]) -> httpx.URL:
    """The URL when we may request it, else ProviderMediaRefused."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ProviderMediaRefused("URL inválida") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host or parsed.userinfo:
        raise ProviderMediaRefused("URL inválida")
    if origin(url) in {origin(base) for base in trusted if base}:
        return parsed
    host = parsed.host.lower().rstrip(".")
    if parsed.scheme != "https":
        raise ProviderMediaRefused(f"só https ({host})")
    if not any(_matches(host, pattern) for pattern in hosts):
        raise ProviderMediaRefused(f"host não permitido ({host})")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, parsed.port or 443, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"DNS lookup failed for {host}") from exc
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise ProviderMediaRefused(f"{host} aponta para endereço interno")
    return parsed


def _matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    return host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern


async def fetch_file(
    http: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str],
    trusted: Sequence[str],
    hosts: Sequence[str],
    max_bytes: int,
    name: str,
    content_type: str | None = None,
    filename: str | None = None,
) -> InboundAttachment:
    """GET a file (following a few vetted redirects) into memory."""
    declared = content_type
    try:
        async with asyncio.timeout(BUDGET_SECONDS):
            target = url
            for _hop in range(MAX_REDIRECTS + 1):
                checked = await check_url(target, trusted=trusted, hosts=hosts)
                async with http.stream(
                    "GET", checked, headers=dict(headers), follow_redirects=False
                ) as response:
                    location = response.headers.get("location")
                    if response.is_redirect and location:
                        target = str(checked.join(location))
                        continue
                    declared = declared or response.headers.get("content-type")
                    if response.status_code != 200:
                        return refused(
                            declared,
                            f"falha ao baixar a mídia (HTTP {response.status_code})",
                            retryable=response.status_code in RETRYABLE_STATUS,
                        )
                    length = response.headers.get("content-length", "")
                    if length.isdigit() and int(length) > max_bytes:
                        return refused(declared, _too_big(max_bytes), size=int(length))
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            return refused(declared, _too_big(max_bytes), size=size)
                        chunks.append(chunk)
                    data = b"".join(chunks)
                    kind = sniff_content_type(data, declared)
                    return InboundAttachment(
                        content_type=kind,
                        data=data,
                        filename=filename or f"{name}{mimetypes.guess_extension(kind) or ''}",
                        size=len(data),
                    )
            raise ProviderMediaRefused("redirecionamentos demais")
    except ProviderMediaRefused as exc:
        return refused(declared, f"endereço de mídia recusado: {exc.message}")
    except (TimeoutError, httpx.TimeoutException):
        return refused(declared, "tempo esgotado ao baixar a mídia", retryable=True)
    except httpx.HTTPError as exc:
        return refused(
            declared, f"falha de rede ao baixar a mídia ({type(exc).__name__})", retryable=True
        )


def refused(
    declared: str | None, reason: str, *, size: int | None = None, retryable: bool = False
) -> InboundAttachment:
    log.warning("WhatsApp media refused: %s", reason)
    return InboundAttachment(
        content_type=(declared or "application/octet-stream").split(";")[0].strip().lower(),
        data=None,
        refused_reason=reason,
        size=size,
        retryable=retryable,
    )


def _too_big(limit: int) -> str:
    return f"arquivo excede o limite de {limit} bytes"
