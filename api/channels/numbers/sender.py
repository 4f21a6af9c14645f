"""The outbox's one WhatsApp sender: each message leaves through the provider and number its
route names (the number the infringer wrote to, "<provider>:<E.164>" in the outbox), Twilio's
for a route in Twilio's own form."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Mapping

import httpx

from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import MediaItem, WhatsAppAdapter
from api.channels.numbers.service import NumberConfig, env_number, find_number, parse_route
from api.conversations.inbound import InboundAttachment
from api.conversations.models import Channel
from api.db import unit_of_work
from api.errors import ChannelDeliveryError
from api.outbox.senders import ChannelSender, Envelope, SendResult


async def number_for(
    provider: Provider, *, number: str | None = None, account_id: str | None = None
) -> NumberConfig | None:
    async with unit_of_work() as session:
        return await find_number(session, provider, number=number, account_id=account_id)


class WhatsAppRouter:
    """ChannelSender for WhatsApp over every provider."""

    channel = Channel.WHATSAPP

    def __init__(
        self, *, twilio: ChannelSender, adapters: Mapping[Provider, WhatsAppAdapter]
    ) -> None:
        self.twilio = twilio
        self.adapters = dict(adapters)

    async def send(self, envelope: Envelope) -> SendResult:
        provider, number = parse_route(envelope.sender)
        if provider is Provider.TWILIO:
            return await self.twilio.send(envelope)
        adapter = self.adapters.get(provider)
        if adapter is None:
            raise ChannelDeliveryError(f"provedor {provider.value} indisponível", retryable=False)
        config = await number_for(provider, number=number) or env_number(provider)
        return await adapter.send(dataclasses.replace(envelope, sender=number), config)

    async def aclose(self) -> None:
        for sender in (self.twilio, *self.adapters.values()):
            close = getattr(sender, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


class AdapterDownloader:
    """A provider's media download as the WhatsApp media fetcher calls it."""

    def __init__(self, adapter: WhatsAppAdapter) -> None:
        self.adapter = adapter

    async def __call__(
        self,
        http: httpx.AsyncClient,
        *,
        url: str,
        content_type: str | None,
        meta: Mapping[str, object],
        max_bytes: int,
        name: str,
    ) -> InboundAttachment:
        account = meta.get("account_id")
        to = meta.get("to")
        config = await number_for(
            self.adapter.provider,
            number=str(to) if to else None,
            account_id=str(account) if account else None,
        ) or env_number(self.adapter.provider)
        return await self.adapter.download(
            http,
            MediaItem(source_url=url, content_type=content_type),
            number=config,
            max_bytes=max_bytes,
            name=name,
        )
