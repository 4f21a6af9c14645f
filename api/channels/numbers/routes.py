"""Webhooks of the WhatsApp providers other than Twilio.

Each is checked before its body is parsed (Meta: X-Hub-Signature-256; 360dialog: the secret in
the URL and our header; Z-API and UltraMsg: the secret in the URL, then the instance must be one
of ours), stored and committed before the 200 goes back (the provider retries anything else),
and what follows (media downloads, the bot turn) runs after the commit, as the inbound pipeline
decides.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.numbers.models import Provider
from api.channels.numbers.webhooks import check_accounts, do_receive_webhook
from api.channels.registry import whatsapp_adapters
from api.channels.whatsapp_meta.adapter import check_subscription
from api.errors import PayloadTooLarge, PermissionDenied
from api.web.deps import get_session

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

META_PATH = "/webhooks/meta/whatsapp"
# Cloud API batches are a few KB each; anything much bigger is not a provider's webhook.
MAX_BODY_BYTES = 512 * 1024

# The request's one transaction, committed before the response is sent ("function" scope).
WebhookSession = Annotated[AsyncSession, Depends(get_session, scope="function")]


@router.get(META_PATH, include_in_schema=False)
async def meta_handshake(
    mode: Annotated[str | None, Query(alias="hub.mode")] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token")] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge")] = None,
) -> Response:
    """Meta's subscription check: echo hub.challenge when hub.verify_token is ours."""
    answer = check_subscription(mode, token, challenge)
    if answer is None:
        log.warning("Meta webhook verification refused")
        raise PermissionDenied("Token de verificação do webhook inválido.")
    return PlainTextResponse(answer)


@router.post(META_PATH, include_in_schema=False)
async def meta_webhook(request: Request, session: WebhookSession) -> Response:
    return await _receive(request, session, Provider.META, None)


@router.post("/webhooks/360dialog/{secret}", include_in_schema=False)
async def d360_webhook(secret: str, request: Request, session: WebhookSession) -> Response:
    return await _receive(request, session, Provider.D360, secret)


@router.post("/webhooks/zapi/{secret}", include_in_schema=False)
async def zapi_webhook(secret: str, request: Request, session: WebhookSession) -> Response:
    return await _receive(request, session, Provider.ZAPI, secret)


@router.post("/webhooks/ultramsg/{secret}", include_in_schema=False)
async def ultramsg_webhook(secret: str, request: Request, session: WebhookSession) -> Response:
    return await _receive(request, session, Provider.ULTRAMSG, secret)


async def _receive(
    request: Request, session: AsyncSession, provider: Provider, secret: str | None
) -> Response:
    adapter = whatsapp_adapters()[provider]
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge("Corpo do webhook grande demais.")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLarge("Corpo do webhook grande demais.")
    if not adapter.verify(body=body, headers=request.headers, path_secret=secret):
        log.warning(
            "%s webhook refused: bad or missing credentials from %s",
            provider.value,
            request.client.host if request.client else "?",
        )
        raise PermissionDenied(f"Webhook do {provider.value} sem assinatura ou segredo válido.")
    # U+0000 means nothing in a message and PostgreSQL cannot store it: dropped once the body
    # as sent has been authenticated.
    parsed = adapter.parse(body.replace(b"\\u0000", b""))
    if getattr(adapter, "requires_known_account", False):
        await check_accounts(session, provider, parsed)
    await do_receive_webhook(session, provider, parsed)
    return Response(status_code=200)
