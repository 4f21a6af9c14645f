"""Twilio's webhooks: incoming WhatsApp messages and delivery status callbacks.

Both are signed (X-Twilio-Signature) over the public URL Twilio was given; anything unsigned
is refused before it is read further. The incoming message (its raw form, and its media as
pending references) is stored, and committed, before the 200 goes back, so Twilio never hears
"OK" for a message we could lose; media downloads and the bot turn run after the commit, as the
inbound pipeline decides (api.conversations.inbound): this adapter only verifies and parses.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.numbers.models import Provider
from api.channels.numbers.service import do_assign_number, maybe_number
from api.channels.whatsapp_twilio.adapter import (
    MalformedWebhook,
    Params,
    parse_form_body,
    parse_message_form,
    pending_media,
    public_url,
    to_inbound,
    verify_signature,
)
from api.config import Settings, get_settings
from api.conversations.delivery import (
    do_advance_delivery,
    do_advance_delivery_at_once,
    do_update_delivery_status,
)
from api.conversations.inbound import do_receive_message
from api.conversations.models import Channel, DeliveryStatus
from api.db import get_engine, run_after_commit, unit_of_work, utcnow
from api.errors import PayloadTooLarge, PermissionDenied
from api.events.consumers import inline_drains_in_background
from api.ids import MAX_ID
from api.web.proxies import forwarded_headers_trusted

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks/twilio", tags=["webhooks"])

MESSAGE_PATH = "/webhooks/twilio/whatsapp"
STATUS_PATH = "/webhooks/twilio/status"
# Twilio's forms are a few KB; anything much bigger is not Twilio.
MAX_FORM_BYTES = 256 * 1024
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


async def webhook_session() -> AsyncIterator[AsyncSession]:
    """The request's one transaction, committed before the response is sent. Of what waits
    for the commit, only the cheap part runs before the acknowledgement (the bot turn is
    handed to a background task, the event capture for tests); the inline event consumers'
    passes run beside the response, not before it (api.events.consumers). Nothing is lost if
    the process dies meanwhile: the turn sweeper and the worker's consumers read the database."""
    async with _webhook_transaction() as session:
        yield session


def _webhook_transaction() -> AbstractAsyncContextManager[AsyncSession]:
    return unit_of_work(after_commit=_hooks_in_background)


async def _hooks_in_background(session: AsyncSession) -> None:
    with inline_drains_in_background():
        await run_after_commit(session)


# "function" scope: committed before the response is sent (with the default scope FastAPI would
# send the 200 first and commit afterwards).
WebhookSession = Annotated[AsyncSession, Depends(webhook_session, scope="function")]

_CALLBACK_STATUS = {
    "queued": DeliveryStatus.QUEUED,
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.SENDING,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.READ,
    "failed": DeliveryStatus.FAILED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "canceled": DeliveryStatus.FAILED,
}


@router.post("/whatsapp", include_in_schema=False)
async def receive_whatsapp(request: Request, session: WebhookSession) -> Response:
    """Store an incoming WhatsApp message once (by MessageSid) and answer empty TwiML."""
    settings = get_settings()
    params = await read_signed_form(request, settings)
    parsed = parse_message_form(params)
    # No download here: the media are stored as pending (with the raw form) and fetched after
    # the commit, by this process at once and by the worker if this one dies (fetching.py).
    inbound = to_inbound(parsed, attachments=pending_media(parsed.media), received_at=utcnow())
    # The pipeline decides what follows (media fetch, then the bot turn, after the commit).
    received = await do_receive_message(session, inbound)
    if received.created:
        await do_assign_number(
            session,
            received.conversation,
            provider=Provider.TWILIO,
            number=maybe_number(parsed.to),
        )
    if not received.created:
        log.info("replayed WhatsApp message %s ignored", parsed.message_sid)
    return Response(content=EMPTY_TWIML, media_type="text/xml")


@router.post("/status", include_in_schema=False)
async def receive_status(request: Request) -> Response:
    """Record a delivery status callback; a late, older status changes nothing.

    Two of these come for every message we send: the usual one (a message we know moving
    forward) is one autocommitted statement on PostgreSQL, with no session; the others take
    the request's transaction, committed before the response."""
    settings = get_settings()
    params = await read_signed_form(request, settings)
    sid = _one(params, "MessageSid") or _one(params, "SmsSid")
    reported = (_one(params, "MessageStatus") or _one(params, "SmsStatus") or "").lower()
    if not sid or not reported:
        raise MalformedWebhook("Callback de status sem MessageSid ou MessageStatus.")
    status = _CALLBACK_STATUS.get(reported)
    if status is None:
        log.info("status %r of %s not tracked", reported, sid)
        return Response(status_code=200)
    error = _error_text(_one(params, "ErrorCode"), _one(params, "ErrorMessage"))
    if error is None and await do_advance_delivery_at_once(
        get_engine(), channel=Channel.WHATSAPP, provider_id=sid, status=status
    ):
        return Response(status_code=200)
    async with _webhook_transaction() as session:
        if error is None and await do_advance_delivery(
            session, channel=Channel.WHATSAPP, provider_id=sid, status=status
        ):
            return Response(status_code=200)
        message = await do_update_delivery_status(
            session,
            channel=Channel.WHATSAPP,
            provider_id=sid,
            status=status,
            error=error,
            message_id=_message_id(request.query_params.get("mid", "")),
        )
    if message is None:
        # Answer 2xx anyway: an error would only make Twilio retry a callback we cannot place.
        log.warning("status callback for unknown message %s (%s)", sid, reported)
    return Response(status_code=200)


async def read_signed_form(request: Request, settings: Settings) -> Params:
    """The POSTed form, once X-Twilio-Signature proves Twilio sent it for our public URL."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Corpo do webhook grande demais.")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise PayloadTooLarge("Corpo do webhook grande demais.")
    params = parse_form_body(body)
    token = settings.twilio.auth_token.get_secret_value() if settings.twilio.auth_token else ""
    signature = request.headers.get("x-twilio-signature")
    signature_settings = request.headers.get("x-twilio-webhooks-signature-settings")
    if not token:
        log.error("Twilio webhook refused: TWILIO_AUTH_TOKEN is not set")
    elif signature and any(
        verify_signature(url, params, signature, token, signature_settings=signature_settings)
        for url in candidate_urls(request, settings.public_base_url)
    ):
        # U+0000 means nothing in a message and PostgreSQL cannot store it (a 500 Twilio would
        # retry forever): dropped once the signature over the form as sent has been checked.
        return {
            key: [value.replace("\x00", "") for value in values] for key, values in params.items()
        }
    log.warning(
        "Twilio webhook %s refused: %s signature from %s",
        request.url.path,
        "invalid" if signature else "missing",
        request.client.host if request.client else "?",
    )
    raise PermissionDenied("Assinatura do Twilio ausente ou inválida.")


def candidate_urls(request: Request, public_base_url: str) -> list[str]:
    """PUBLIC_BASE_URL + path + query, then the name a trusted proxy (TRUSTED_PROXIES) says it
    was reached under; anyone else's X-Forwarded-* would let a signature for another host in."""
    path, query = request.url.path, request.url.query
    urls = [public_url(path=path, query=query, public_base_url=public_base_url)]
    via_proxy = "x-forwarded-host" in request.headers or "x-forwarded-proto" in request.headers
    if via_proxy and forwarded_headers_trusted(request):
        forwarded = public_url(
            path=path, query=query, public_base_url=public_base_url, headers=request.headers
        )
        if forwarded not in urls:
            urls.append(forwarded)
    return urls


def _message_id(mid: str) -> int | None:
    """Our message id from the callback URL's `mid`, if it is one (never a 500 on a huge one)."""
    if not (mid.isascii() and mid.isdigit()):
        return None
    value = int(mid)
    return value if 1 <= value <= MAX_ID else None


def _one(params: Params, key: str) -> str | None:
    values = params.get(key)
    return values[0].strip() or None if values else None


def _error_text(code: str | None, message: str | None) -> str | None:
    if code and message:
        return f"{code}: {message}"
    return code or message
