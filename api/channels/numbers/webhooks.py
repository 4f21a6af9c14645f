"""What every provider's webhook does once its adapter has verified and parsed it: store each
message once (by provider id) through the inbound pipeline, note the number it came in on, and
apply the delivery statuses (a late, older one changes nothing)."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import ParsedWebhook, ProviderMessage, ProviderStatus
from api.channels.numbers.service import do_assign_number, find_number
from api.conversations.delivery import do_update_delivery_status
from api.conversations.inbound import (
    InboundAttachment,
    InboundMessage,
    Received,
    do_receive_message,
)
from api.conversations.models import Channel, Direction, Message
from api.db import utcnow
from api.errors import PermissionDenied

log = logging.getLogger(__name__)


async def check_accounts(session: AsyncSession, provider: Provider, parsed: ParsedWebhook) -> None:
    """Refuse a webhook for an instance that is not one of our numbers (nothing is stored)."""
    if not parsed.accounts and (parsed.messages or parsed.statuses):
        raise PermissionDenied(f"Webhook do {provider.value} sem instância.")
    for account in parsed.accounts:
        if await find_number(session, provider, account_id=account) is None:
            log.warning("%s webhook for unknown instance refused", provider.value)
            raise PermissionDenied(f"Instância do {provider.value} desconhecida.")


def to_inbound(provider: Provider, message: ProviderMessage) -> InboundMessage:
    meta = {"provider": provider.value, **message.meta}
    if message.to:
        meta["to"] = message.to
    if message.account_id:
        meta["account_id"] = message.account_id
    return InboundMessage(
        channel=Channel.WHATSAPP,
        external_id=message.external_id,
        sender=message.sender,
        text=message.text,
        received_at=utcnow(),
        raw=message.raw,
        attachments=tuple(
            InboundAttachment(
                content_type=(item.content_type or "application/octet-stream")
                .split(";")[0]
                .strip()
                .lower(),
                data=None,
                filename=item.filename,
                source_url=item.source_url,
            )
            for item in message.media
        ),
        meta=meta,
        answerable=message.answerable,
    )


async def do_receive_webhook(
    session: AsyncSession, provider: Provider, parsed: ParsedWebhook
) -> list[Received]:
    received: list[Received] = []
    for message in parsed.messages:
        got = await do_receive_message(session, to_inbound(provider, message))
        if got.created:
            await do_assign_number(session, got.conversation, provider=provider, number=message.to)
        else:
            log.info("replayed %s message %s ignored", provider.value, message.external_id)
        received.append(got)
    for status in parsed.statuses:
        await do_apply_status(session, status)
    return received


async def do_apply_status(session: AsyncSession, status: ProviderStatus) -> Message | None:
    provider_id = status.provider_id
    message_id = status.message_id
    if message_id is not None:
        ours = await session.get(Message, message_id)
        if ours is None or ours.channel != Channel.WHATSAPP or ours.direction != Direction.OUTBOUND:
            message_id = None
        elif ours.provider_id:
            # The provider names it by another id than its send answer did (UltraMsg).
            provider_id = ours.provider_id
    message = await do_update_delivery_status(
        session,
        channel=Channel.WHATSAPP,
        provider_id=provider_id,
        status=status.status,
        error=status.error,
        message_id=message_id,
    )
    if message is None:
        log.warning("status %s for unknown message %s", status.status, status.provider_id)
    return message
