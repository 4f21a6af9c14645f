"""The e-mail sender the outbox uses: a reply to mail read through a Gmail or Graph mailbox goes
back through that mailbox (Gmail: in its threadId; Graph: createReply/send); other mail through
the mailbox marked `default_sender` when there is one, else SMTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
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
        """The mailbox the answered mail came through, else the one marked `default_sender`
        (firms without SMTP send notices through Gmail or Microsoft 365), else None (SMTP)."""
        ref = envelope.meta.get("mailbox")
        async with unit_of_work(self.maker or get_sessionmaker()) as session:
            if isinstance(ref, dict) and ref.get("mailbox_id"):
                row = await session.get(Mailbox, int(ref["mailbox_id"]))
                if _usable(row):
                    assert row is not None
                    return MailboxRef.of(row)
            rows = await session.scalars(
                sa.select(Mailbox)
                .where(Mailbox.provider.in_(list(_API_PROVIDERS)))
                .order_by(Mailbox.id)
            )
            for row in rows:
                if _usable(row) and row.config.get("default_sender"):
                    return MailboxRef.of(row)
        return None


def _usable(row: Mailbox | None) -> bool:
    return (
        row is not None
        and row.provider in _API_PROVIDERS
        and row.state is not MailboxState.DISABLED
    )
