"""360dialog: the Cloud API through https://waba-v2.360dialog.io with the D360-API-KEY header.

360dialog's webhooks carry no signature (there is no app secret between it and us), so a
webhook is taken only when the URL's secret (/webhooks/360dialog/{secret}) and the header we
configured on 360dialog's webhook (D360_WEBHOOK_HEADER, same secret) both match
D360_WEBHOOK_SECRET. Media: GET /{media id} gives Meta's lookaside URL, fetched through
360dialog's own host with the same path and query (https://docs.360dialog.com/docs/waba-messaging/media).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

import httpx

from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import MediaItem, ParsedWebhook
from api.channels.numbers.service import NumberConfig
from api.channels.whatsapp_cloud.adapter import CloudApiClient, parse_webhook
from api.config import get_settings
from api.conversations.inbound import InboundAttachment
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult

API_KEY_HEADER = "D360-API-KEY"


def same_secret(given: str | None, expected: str) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class Dialog360Adapter:
    provider = Provider.D360

    def __init__(self) -> None:
        self._client = CloudApiClient(provider=Provider.D360, label="360dialog")

    def verify(self, *, body: bytes, headers: Mapping[str, str], path_secret: str | None) -> bool:
        settings = get_settings().d360
        if settings.webhook_secret is None:
            return False
        expected = settings.webhook_secret.get_secret_value()
        header = headers.get(settings.webhook_header.lower())
        return same_secret(path_secret, expected) and same_secret(header, expected)

    def parse(self, body: bytes) -> ParsedWebhook:
        return parse_webhook(body, provider=self.provider, media_base=get_settings().d360.base_url)

    async def send(self, envelope: Envelope, number: NumberConfig) -> SendResult:
        if number.token is None:
            raise ChannelDeliveryError("360dialog não configurado (D360_API_KEY).", retryable=True)
        url = f"{get_settings().d360.base_url.rstrip('/')}/messages"
        return await self._client.post_message(
            url, envelope, headers={API_KEY_HEADER: number.token.get_secret_value()}
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
        base = get_settings().d360.base_url
        key = number.token.get_secret_value() if number.token else ""
        return await self._client.download(
            http,
            item,
            headers={API_KEY_HEADER: key},
            trusted=[base],
            hosts=(),
            rewrite_to=base,
            max_bytes=max_bytes,
            name=name,
        )

    async def aclose(self) -> None:
        await self._client.aclose()
