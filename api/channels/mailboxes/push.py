"""Push hints from the providers, turned into "sync this mailbox now" flags.

A hint never carries mail: the runner's sync reads from the stored cursor, so a forged, repeated
or lost hint can make us look early or late, never lose or double a message. Still, hints are
authenticated: Gmail's Pub/Sub push by the token in the push endpoint's URL, each Graph
notification by its clientState (compared with the hash we kept when creating the subscription).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.mailboxes.models import MailboxProvider
from api.channels.mailboxes.service import (
    check_secret,
    do_request_sync,
    get_by_address,
    get_by_push_id,
)
from api.errors import PermissionDenied, ValidationFailed

log = logging.getLogger(__name__)


def check_push_token(given: str | None, expected: str | None) -> None:
    """Gmail Pub/Sub push: the push endpoint is configured with ?token=<MAILBOX_PUSH_TOKEN>."""
    if not expected:
        raise PermissionDenied("push do Gmail desativado (MAILBOX_PUSH_TOKEN não definido)")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDenied("token de push inválido")


def parse_pubsub_push(body: Any) -> tuple[str, str | None]:
    """(emailAddress, historyId) of a Pub/Sub push request carrying a Gmail notification."""
    try:
        data = base64.b64decode(str(body["message"]["data"]), validate=False)
        payload = json.loads(data)
        address = str(payload["emailAddress"]).strip().lower()
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ValidationFailed("notificação Pub/Sub malformada") from exc
    history = payload.get("historyId")
    return address, (str(history) if history is not None else None)


async def do_gmail_push(session: AsyncSession, *, address: str) -> bool:
    box = await get_by_address(session, provider=MailboxProvider.GMAIL, address=address)
    if box is None:
        log.info("Gmail push for unknown mailbox %s ignored", address)
        return False
    return await do_request_sync(session, mailbox_id=box.id)


@dataclass
class NotificationResult:
    accepted: int = 0
    rejected: int = 0  # wrong clientState
    unknown: int = 0  # a subscription we do not have


async def do_graph_notifications(session: AsyncSession, body: Any) -> NotificationResult:
    """Change and lifecycle notifications: each checked against its subscription's clientState;
    `missed` and change notifications ask for a sync, `reauthorizationRequired` makes the
    subscription due for renewal (and syncs), `subscriptionRemoved` drops it so the next pass
    creates a new one."""
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise ValidationFailed("notificação do Graph sem 'value'")
    result = NotificationResult()
    for item in items:
        if not isinstance(item, dict) or not item.get("subscriptionId"):
            raise ValidationFailed("notificação do Graph sem subscriptionId")
        box = await get_by_push_id(session, push_id=str(item["subscriptionId"]))
        if box is None:
            result.unknown += 1
            continue
        if not check_secret(_text(item.get("clientState")), box.push_secret_hash):
            log.warning("Graph notification with a wrong clientState for mailbox %s", box.name)
            result.rejected += 1
            continue
        result.accepted += 1
        event = str(item.get("lifecycleEvent") or "")
        if event == "subscriptionRemoved":
            box.push_id = None
            box.push_expires_at = None
        elif event == "reauthorizationRequired":
            box.push_expires_at = None  # renew at the end of the next pass
        await do_request_sync(session, mailbox_id=box.id)
    await session.flush()
    return result


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
