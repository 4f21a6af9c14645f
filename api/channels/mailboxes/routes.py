"""Webhooks of mailbox connectors: Gmail's Pub/Sub push and Graph's change notifications.

Both only flag the mailbox for a sync (api/channels/mailboxes/push.py) and answer at once; the
worker's runner reads the mail."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.mailboxes.push import (
    PushAuth,
    check_push,
    do_gmail_push,
    do_graph_notifications,
    parse_pubsub_push,
)
from api.config import get_settings
from api.errors import PayloadTooLarge, PermissionDenied, ValidationFailed
from api.web.deps import get_session

router = APIRouter(prefix="/webhooks", include_in_schema=False)
WebhookSession = Annotated[AsyncSession, Depends(get_session, scope="function")]
MAX_BODY = 256 * 1024


async def _json(request: Request) -> object:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise PayloadTooLarge("notificação grande demais")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ValidationFailed("corpo JSON inválido") from exc


@router.post("/gmail/push")
async def gmail_push(request: Request, session: WebhookSession) -> Response:
    """Pub/Sub push of a Gmail watch: 204 acknowledges (Pub/Sub retries anything else)."""
    settings = get_settings()
    config = settings.mailboxes
    auth = PushAuth(
        token=config.push_token.get_secret_value() if config.push_token else None,
        service_account=config.push_service_account,
        audience=config.push_audience
        or f"{settings.public_base_url.rstrip('/')}/webhooks/gmail/push",
        certs_url=config.push_certs_url,
    )
    await asyncio.to_thread(
        check_push,
        query_token=request.query_params.get("token"),
        authorization=request.headers.get("authorization"),
        auth=auth,
    )
    address, _history = parse_pubsub_push(await _json(request))
    await do_gmail_push(session, address=address)
    return Response(status_code=204)


@router.post("/graph/notifications")
async def graph_notifications(request: Request, session: WebhookSession) -> Response:
    """The validationToken handshake (echoed as text/plain), then change and lifecycle
    notifications (202)."""
    validation = request.query_params.get("validationToken")
    if validation is not None:
        return PlainTextResponse(validation[:1024], headers={"X-Content-Type-Options": "nosniff"})
    result = await do_graph_notifications(session, await _json(request))
    if result.rejected and not result.accepted:
        raise PermissionDenied("clientState inválido")
    return Response(status_code=202)
