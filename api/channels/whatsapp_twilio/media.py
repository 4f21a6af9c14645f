"""Fetching the media of an incoming WhatsApp message from Twilio into memory, size-limited.

Twilio's MediaUrlN answers only with the account's credentials (HTTP basic auth) and redirects
to a short-lived URL on its media CDN. A signed webhook can still name any URL, so every hop
(the MediaUrl and each redirect) is checked before it is requested: https on a host of
TWILIO_MEDIA_HOSTS that resolves to public addresses only, or the configured TWILIO_API_BASE_URL
origin itself (the local simulator in development and tests). The credentials go to that origin
only, never to the CDN or anywhere else. A URL refused this way is `MediaUrlRefused` (final,
never retried). A file that cannot be fetched becomes an attachment with a refusal reason: the
message itself is always stored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mimetypes
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import httpx

from api.channels.whatsapp_twilio.adapter import MediaRef
from api.config import get_settings
from api.conversations.inbound import InboundAttachment
from api.errors import AppError
from api.storage import sniff_content_type

log = logging.getLogger(__name__)

# Twilio gives up on a webhook after 15 s and retries it: every download of one webhook shares
# a budget well below that, so the webhook still answers in time.
MEDIA_BUDGET_SECONDS = 10.0
MEDIA_TIMEOUT = httpx.Timeout(8.0, connect=4.0)
# Failures the worker tries again later (with backoff); any other refusal is final.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_REDIRECTS = 5
_REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})


class MediaUrlRefused(AppError):
    """A media URL (or a redirect from it) we will not fetch: final, never retried."""

    code = "media_url_refused"
    status_code = 400
    retryable = False


async def download_media(
    refs: Sequence[MediaRef],
    *,
    auth: tuple[str, str] | None,
    max_bytes: int,
    message_sid: str,
    budget_seconds: float = MEDIA_BUDGET_SECONDS,
    client: httpx.AsyncClient | None = None,
) -> list[InboundAttachment]:
    """Download every media of a message concurrently; failures come back as refusals."""
    if not refs:
        return []
    if client is not None:
        return await _download_all(client, refs, auth, max_bytes, message_sid, budget_seconds)
    async with httpx.AsyncClient(timeout=MEDIA_TIMEOUT) as http:
        return await _download_all(http, refs, auth, max_bytes, message_sid, budget_seconds)


async def _download_all(
    http: httpx.AsyncClient,
    refs: Sequence[MediaRef],
    auth: tuple[str, str] | None,
    max_bytes: int,
    message_sid: str,
    budget_seconds: float,
) -> list[InboundAttachment]:
    return list(
        await asyncio.gather(
            *(
                download_one(
                    http,
                    ref,
                    auth=auth,
                    max_bytes=max_bytes,
                    message_sid=message_sid,
                    budget_seconds=budget_seconds,
                )
                for ref in refs
            )
        )
    )


async def download_one(
    http: httpx.AsyncClient,
    ref: MediaRef,
    *,
    auth: tuple[str, str] | None,
    max_bytes: int,
    message_sid: str,
    budget_seconds: float = MEDIA_BUDGET_SECONDS,
) -> InboundAttachment:
    declared = ref.content_type
    chunks: list[bytes] = []
    try:
        async with asyncio.timeout(budget_seconds):
            async with open_media(http, ref.url, auth=auth) as response:
                declared = declared or response.headers.get("content-type")
                if response.status_code != 200:
                    return _refused(
                        ref,
                        declared,
                        f"falha ao baixar a mídia (HTTP {response.status_code})",
                        retryable=response.status_code in RETRYABLE_STATUS,
                    )
                length = _content_length(response)
                if length is not None and length > max_bytes:
                    return _refused(ref, declared, _too_big(length, max_bytes), size=length)
                size = 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        return _refused(ref, declared, _too_big(None, max_bytes), size=size)
                    chunks.append(chunk)
    except MediaUrlRefused as exc:
        return _refused(ref, declared, exc.message)
    except TimeoutError:
        return _refused(ref, declared, "tempo esgotado ao baixar a mídia", retryable=True)
    except httpx.TimeoutException:
        return _refused(ref, declared, "tempo esgotado ao baixar a mídia", retryable=True)
    except httpx.HTTPError as exc:
        return _refused(
            ref,
            declared,
            f"falha de rede ao baixar a mídia ({type(exc).__name__})",
            retryable=True,
        )
    data = b"".join(chunks)
    content_type = sniff_content_type(data, declared)
    return InboundAttachment(
        content_type=content_type,
        data=data,
        filename=_filename(message_sid, ref.index, content_type),
        size=len(data),
    )


def _refused(
    ref: MediaRef,
    declared: str | None,
    reason: str,
    *,
    size: int | None = None,
    retryable: bool = False,
) -> InboundAttachment:
    log.warning("media %s of a WhatsApp message refused: %s", ref.index, reason)
    return InboundAttachment(
        content_type=(declared or "application/octet-stream").split(";")[0].strip().lower(),
        data=None,
        refused_reason=reason,
        size=size,
        retryable=retryable,
    )


def _too_big(size: int | None, limit: int) -> str:
    if size is None:
        return f"arquivo excede o limite de {limit} bytes"
    return f"arquivo de {size} bytes excede o limite de {limit} bytes"


def _content_length(response: httpx.Response) -> int | None:
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _filename(message_sid: str, index: int, content_type: str) -> str:
    extension = mimetypes.guess_extension(content_type) or ""
    return f"whatsapp-{message_sid}-{index}{extension}"


@asynccontextmanager
async def open_media(
    http: httpx.AsyncClient, url: str, *, auth: tuple[str, str] | None
) -> AsyncIterator[httpx.Response]:
    """GET a media URL, following redirects by hand: each hop is checked (`check_media_url`)
    and only the provider's API origin is sent `auth`. Raises MediaUrlRefused.

    A checked CDN hop is requested at the very address that was checked (TLS still verifies
    the host name, through SNI): a DNS answer that changes after the check cannot redirect it.
    """
    target = _parse(url)
    for _hop in range(MAX_REDIRECTS + 1):
        credentialed, address = await _vet(target)
        request_url, headers, extensions = target, {}, {}
        if address is not None:
            request_url = target.copy_with(host=address)
            headers = {"Host": target.netloc.decode("ascii")}
            extensions = {"sni_hostname": target.raw_host.decode("ascii")}
        async with http.stream(
            "GET",
            request_url,
            auth=auth if credentialed else None,
            headers=headers,
            extensions=extensions,
            follow_redirects=False,
        ) as response:
            location = response.headers.get("location")
            if response.status_code in _REDIRECT_STATUS and location:
                target = _parse(str(target.join(location)))
                continue
            yield response
            return
    raise MediaUrlRefused("endereço de mídia recusado: redirecionamentos demais")


async def check_media_url(url: httpx.URL) -> bool:
    """Refuse a hop outside the provider's media hosts; True when it may get the credentials.

    The configured API origin (scheme, host and port of TWILIO_API_BASE_URL) is the provider
    as the operator named it: allowed as is. Any other host must be https, on the allow-list
    and resolve only to public addresses (no loopback, private, link-local or metadata ones).
    """
    credentialed, _address = await _vet(url)
    return credentialed


async def _vet(url: httpx.URL) -> tuple[bool, str | None]:
    """(may get the credentials, the checked address to connect to: None for the API origin)."""
    twilio = get_settings().twilio
    api = _parse(twilio.api_base_url)
    if (url.scheme, url.host, _port(url)) == (api.scheme, api.host, _port(api)):
        return True, None
    host = url.host.lower().rstrip(".")
    if url.scheme != "https":
        raise MediaUrlRefused(f"endereço de mídia recusado: só https ({url.scheme}://{host})")
    if not any(_host_matches(host, pattern) for pattern in (api.host, *twilio.media_hosts)):
        raise MediaUrlRefused(f"endereço de mídia recusado: host não permitido ({host})")
    addresses = await _resolve(host, _port(url))
    for address in addresses:
        if not _is_public(address):
            raise MediaUrlRefused(
                f"endereço de mídia recusado: {host} aponta para endereço interno ({address})"
            )
    if not addresses:
        raise httpx.ConnectError(f"DNS lookup found no address for {host}")
    return False, addresses[0].split("%", 1)[0]


async def _resolve(host: str, port: int) -> list[str]:
    """Every address the host resolves to (a DNS failure is a network error: retried)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"DNS lookup failed for {host}") from exc
    return [str(info[4][0]) for info in infos]


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    if mapped is not None:
        ip = mapped
    return ip.is_global and not ip.is_multicast


def _host_matches(host: str, pattern: str) -> bool:
    pattern = pattern.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern


def _parse(url: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise MediaUrlRefused("endereço de mídia recusado: URL inválida") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise MediaUrlRefused("endereço de mídia recusado: URL inválida")
    if parsed.userinfo:
        raise MediaUrlRefused("endereço de mídia recusado: URL com credenciais")
    return parsed


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)
