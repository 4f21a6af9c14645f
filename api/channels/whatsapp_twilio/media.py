"""Fetching the media of an incoming WhatsApp message from Twilio into memory, size-limited.

Twilio's MediaUrlN answers only with the account's credentials (HTTP basic auth) and redirects
to a short-lived storage URL; httpx drops the Authorization header when a redirect leaves the
origin, so the credentials never reach the storage host. A file that cannot be fetched becomes
an attachment with a refusal reason: the message itself is always stored.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import Sequence

import httpx

from api.channels.whatsapp_twilio.adapter import MediaRef
from api.conversations.inbound import InboundAttachment
from api.storage import sniff_content_type

log = logging.getLogger(__name__)

# Twilio gives up on a webhook after 15 s and retries it: every download of one webhook shares
# a budget well below that, so the webhook still answers in time.
MEDIA_BUDGET_SECONDS = 10.0
MEDIA_TIMEOUT = httpx.Timeout(8.0, connect=4.0)


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
            async with http.stream("GET", ref.url, auth=auth, follow_redirects=True) as response:
                declared = declared or response.headers.get("content-type")
                if response.status_code != 200:
                    return _refused(
                        ref, declared, f"falha ao baixar a mídia (HTTP {response.status_code})"
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
    except TimeoutError:
        return _refused(ref, declared, "tempo esgotado ao baixar a mídia")
    except httpx.TimeoutException:
        return _refused(ref, declared, "tempo esgotado ao baixar a mídia")
    except httpx.HTTPError as exc:
        return _refused(ref, declared, f"falha de rede ao baixar a mídia ({type(exc).__name__})")
    data = b"".join(chunks)
    content_type = sniff_content_type(data, declared)
    return InboundAttachment(
        content_type=content_type,
        data=data,
        filename=_filename(message_sid, ref.index, content_type),
        size=len(data),
    )


def _refused(
    ref: MediaRef, declared: str | None, reason: str, *, size: int | None = None
) -> InboundAttachment:
    log.warning("media %s of a WhatsApp message refused: %s", ref.index, reason)
    return InboundAttachment(
        content_type=(declared or "application/octet-stream").split(";")[0].strip().lower(),
        data=None,
        refused_reason=reason,
        size=size,
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
