"""Meta's Cloud API: the GET verification handshake, X-Hub-Signature-256 (HMAC-SHA256 of the raw
body with the app secret, checked before anything is parsed), sends through the Graph API with a
bearer token (META_GRAPH_URL pins the version), media downloaded by media id.

https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

import httpx

from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import MediaItem, ParsedWebhook
from api.channels.numbers.service import NumberConfig
from api.channels.whatsapp_cloud.adapter import CloudApiClient, number_id, parse_webhook
from api.config import get_settings
from api.conversations.inbound import InboundAttachment
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult

SIGNATURE_HEADER = "x-hub-signature-256"


def signature_of(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_subscription(mode: str | None, token: str | None, challenge: str | None) -> str | None:
    """The challenge to echo when Meta's handshake names our verify token, else None."""
    expected = get_settings().meta.verify_token
    if mode != "subscribe" or not token or not challenge or expected is None:
        return None
    if not hmac.compare_digest(token.encode(), expected.get_secret_value().encode()):
        return None
    return challenge


class MetaAdapter:
    provider = Provider.META

    def __init__(self) -> None:
        self._client = CloudApiClient(provider=Provider.META, label="Meta")

    def verify(self, *, body: bytes, headers: Mapping[str, str], path_secret: str | None) -> bool:
        secret = get_settings().meta.app_secret
        given = headers.get(SIGNATURE_HEADER) or ""
        if secret is None or not given.startswith("sha256="):
            return False
        expected = signature_of(body, secret.get_secret_value())
        return hmac.compare_digest(given.strip().lower().encode(), expected.encode())

    def parse(self, body: bytes) -> ParsedWebhook:
        return parse_webhook(body, provider=self.provider, media_base=get_settings().meta.graph_url)

    async def send(self, envelope: Envelope, number: NumberConfig) -> SendResult:
        if number.token is None:
            raise ChannelDeliveryError("Meta não configurado (META_ACCESS_TOKEN).", retryable=True)
        url = f"{get_settings().meta.graph_url.rstrip('/')}/{number_id(number)}/messages"
        return await self._client.post_message(
            url, envelope, headers={"Authorization": f"Bearer {number.token.get_secret_value()}"}
        )

    async def download(
        self,
        http: httpx.AsyncClient,
        item: MediaItem,
        *,
        number: NumberConfig,
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        settings = get_settings().meta
        token = number.token.get_secret_value() if number.token else ""
        return await self._client.download(
            http,
            item,
            headers={"Authorization": f"Bearer {token}"},
            trusted=[settings.graph_url],
            hosts=settings.media_hosts,
            rewrite_to=None,
            max_bytes=max_bytes,
            name=name,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
