"""The e-mail sender the outbox uses: a reply to mail read through a Gmail or Graph mailbox goes
back through that mailbox (Gmail: in its threadId; Graph: createReply/send), anything else
through SMTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.mailboxes.base import Connector, MailboxError, MailboxRef, delivery_error
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.conversations.models import Channel
from api.db import get_sessionmaker, unit_of_work
from api.errors import ChannelDeliveryError
from api.outbox.senders import ChannelSender, Envelope, SendResult

_API_PROVIDERS = frozenset({MailboxProvider.GMAIL, MailboxProvider.GRAPH})


@dataclass
class MailboxEmailSender:
    fallback: ChannelSender | None = None
    connectors: Mapping[MailboxProvider, Connector] | None = None
    maker: async_sessionmaker[AsyncSession] | None = None
    channel: Channel = field(default=Channel.EMAIL)

    async def send(self, envelope: Envelope) -> SendResult:
        box = await self._mailbox(envelope)
        if box is not None:
            connectors = self.connectors
            if connectors is None:
                from api.channels.mailboxes.runner import get_connectors

                connectors = get_connectors()
            try:
                return await connectors[box.provider].send(box, envelope)
            except MailboxError as exc:
                raise delivery_error(exc) from exc
        if self.fallback is None:
            raise ChannelDeliveryError("e-mail sem SMTP configurado", retryable=True)
        return await self.fallback.send(envelope)

    async def _mailbox(self, envelope: Envelope) -> MailboxRef | None:
        ref = envelope.meta.get("mailbox")
        if not isinstance(ref, dict) or not ref.get("mailbox_id"):
            return None
        async with unit_of_work(self.maker or get_sessionmaker()) as session:
            row = await session.get(Mailbox, int(ref["mailbox_id"]))
            if (
                row is None
                or row.provider not in _API_PROVIDERS
                or row.state is MailboxState.DISABLED
            ):
                return None
            return MailboxRef.of(row)
