"""IMAP mailboxes in the table: the same ingestion as the IMAP_* mailbox (api/channels/email/imap.py,
UID cursor per UIDVALIDITY, BODY.PEEK), run once per pass by the mailbox runner.

The mailbox configured by IMAP_* settings (migrated into the table with `from_settings`) keeps
its own IDLE loop in the worker; here its row only mirrors that loop's cursor for the panel."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.email.imap import ImapAccount, ingest_once
from api.channels.email.models import ImapCursor
from api.channels.mailboxes.base import MailboxAuthError, MailboxError, MailboxRef, SyncStats
from api.channels.mailboxes.models import MailboxProvider
from api.channels.mailboxes.service import credential
from api.db import get_sessionmaker, unit_of_work
from api.outbox.senders import Envelope, SendResult


class ImapConnector:
    provider = MailboxProvider.IMAP

    def __init__(self, *, maker: async_sessionmaker[AsyncSession] | None = None) -> None:
        self._maker = maker

    @property
    def maker(self) -> async_sessionmaker[AsyncSession]:
        return self._maker or get_sessionmaker()

    def account(self, box: MailboxRef) -> ImapAccount:
        password = credential(box.credentials_env, "password")
        if not password:
            raise MailboxAuthError(
                f"variável {box.credentials_env.get('password')} (senha IMAP) vazia"
            )
        return ImapAccount(
            host=str(box.config["host"]),
            port=int(box.config.get("port") or 993),
            user=str(box.config["user"]),
            password=password,
            ssl=bool(box.config.get("ssl", True)),
            folder=str(box.config.get("folder") or "INBOX"),
        )

    async def sync(
        self, box: MailboxRef, *, last_synced_at: dt.datetime | None = None
    ) -> SyncStats:
        if box.config.get("from_settings"):
            return SyncStats(cursor=await self._mirrored_cursor(box))
        result = await ingest_once(self.account(box), maker=self.maker)
        stats = SyncStats(
            fetched=result.fetched,
            stored=result.stored,
            duplicates=result.duplicates,
            bounces=result.bounces,
            unparsed=result.unparsed,
            cursor=f"{result.uidvalidity}:{result.last_uid}",
        )
        stats.conversations = set(result.conversations)
        return stats

    async def _mirrored_cursor(self, box: MailboxRef) -> str | None:
        key = f"{box.config.get('user')}@{box.config.get('host')}:{box.config.get('port') or 993}"
        async with unit_of_work(self.maker) as session:
            row = (
                await session.execute(
                    sa.select(ImapCursor.uidvalidity, ImapCursor.last_uid)
                    .where(
                        ImapCursor.account == key,
                        ImapCursor.folder == str(box.config.get("folder") or "INBOX"),
                    )
                    .order_by(ImapCursor.updated_at.desc(), ImapCursor.id.desc())
                    .limit(1)
                )
            ).first()
        return f"{row[0]}:{row[1]}" if row else box.cursor

    async def renew_push(self, box: MailboxRef) -> None:
        return None

    async def send(self, box: MailboxRef, envelope: Envelope) -> SendResult:
        raise MailboxError("caixas IMAP respondem por SMTP")
