"""Push hints from the providers, turned into "sync this mailbox now" flags.

A hint never carries mail: the runner's sync reads from the stored cursor, so a forged, repeated
or lost hint can make us look early or late, never lose or double a message. Still, hints are
authenticated: Gmail's Pub/Sub push by the token in the push endpoint's URL or the OIDC token
Google signs for our service account (push with authentication), each Graph
notification by its clientState (compared with the hash we kept when creating the subscription).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import google.auth.exceptions
import google.auth.jwt
import google.auth.transport.requests
import requests
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
_GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})


@dataclass(frozen=True)
class PushAuth:
    """How Gmail's Pub/Sub pushes prove themselves: a token in the URL, an OIDC token signed by
    Google for our service account and audience, or both (either is enough)."""

    token: str | None = None
    service_account: str | None = None
    audience: str | None = None
    certs_url: str = "https://www.googleapis.com/oauth2/v1/certs"


def check_push_token(given: str | None, expected: str | None) -> None:
    """Gmail Pub/Sub push: the push endpoint is configured with ?token=<MAILBOX_PUSH_TOKEN>."""
    if not expected:
        raise PermissionDenied("push do Gmail desativado (MAILBOX_PUSH_TOKEN não definido)")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise PermissionDenied("token de push inválido")


def check_push_oidc(authorization: str | None, auth: PushAuth) -> None:
    """A push with authentication: Google's RS256 JWT (keys from `certs_url`), our audience,
    Google as issuer, and the service account we configured, verified. Blocking (it fetches
    the certificates): run it in a thread."""
    token = (authorization or "").removeprefix("Bearer ").strip()
    if not token or not auth.service_account or not auth.audience:
        raise PermissionDenied("push do Gmail sem autenticação")
    try:
        claims = _verify(token, auth)
    except (ValueError, google.auth.exceptions.GoogleAuthError) as exc:
        # A key Google rotated in since we cached the certificates: fetch them once more.
        if "certificate" not in str(exc).lower() and "kid" not in str(exc).lower():
            raise PermissionDenied(f"token OIDC do push inválido: {str(exc)[:120]}") from exc
        try:
            claims = _verify(token, auth, refresh=True)
        except (ValueError, google.auth.exceptions.GoogleAuthError) as again:
            raise PermissionDenied(f"token OIDC do push inválido: {str(again)[:120]}") from again
    if claims.get("iss") not in _GOOGLE_ISSUERS:
        raise PermissionDenied("token OIDC do push de outro emissor")
    if claims.get("email") != auth.service_account or not claims.get("email_verified"):
        raise PermissionDenied("token OIDC do push de outra conta de serviço")


_CERTS: dict[str, tuple[float, dict[str, str]]] = {}
_CERTS_LOCK = threading.Lock()
CERTS_TTL_SECONDS = 3600.0  # Google rotates these keys over days; its Cache-Control says hours


def _verify(token: str, auth: PushAuth, *, refresh: bool = False) -> dict[str, Any]:
    """The token's claims, checked with google-auth against Google's certificates (cached, so
    a burst of pushes does not fetch them once per request)."""
    with _CERTS_LOCK:
        cached = _CERTS.get(auth.certs_url)
        if refresh or cached is None or cached[0] < time.monotonic():
            session = requests.Session()
            try:
                response = session.get(auth.certs_url, timeout=10)
            except requests.RequestException as exc:
                raise ValueError(f"certificados indisponíveis: {type(exc).__name__}") from exc
            finally:
                session.close()
            if response.status_code != 200:
                raise ValueError(f"certificados indisponíveis ({response.status_code})")
            cached = (time.monotonic() + CERTS_TTL_SECONDS, dict(response.json()))
            _CERTS[auth.certs_url] = cached
        certs = cached[1]
    claims: dict[str, Any] = google.auth.jwt.decode(  # type: ignore[no-untyped-call]
        token, certs=certs, audience=auth.audience
    )
    return claims


def check_push(*, query_token: str | None, authorization: str | None, auth: PushAuth) -> None:
    """Accept the push if either configured proof holds; refuse when none is configured."""
    if not auth.token and not auth.service_account:
        raise PermissionDenied(
            "push do Gmail desativado (defina MAILBOX_PUSH_TOKEN ou MAILBOX_PUSH_SERVICE_ACCOUNT)"
        )
    if auth.token and query_token:
        check_push_token(query_token, auth.token)
        return
    if auth.service_account and authorization:
        check_push_oidc(authorization, auth)
        return
    raise PermissionDenied("push do Gmail sem autenticação")


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
