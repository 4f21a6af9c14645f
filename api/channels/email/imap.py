"""IMAP ingestion (aioimaplib): nothing lost, nothing doubled.

- Progress is the last UID ingested per (account, folder, UIDVALIDITY), committed in the same
  transaction as the message it stands for; a crash between two mails loses nothing and the
  next pass starts after the last committed one. `\\Seen` is never read nor set (BODY.PEEK), so
  a person reading the mailbox changes nothing.
- A new UIDVALIDITY (mailbox recreated, server migrated) starts a fresh cursor at UID 0: every
  mail is fetched again and those already stored are recognised by Message-ID (content hash
  when absent) through the messages table's unique constraint.
- IDLE when the server offers it, else polling; every (re)connect starts with a reconciling
  fetch, so mail that arrived while we were away is picked up; reconnects back off
  exponentially with jitter.
- A mail the pipeline cannot handle is kept raw as an unanswerable message (never blocks the
  mailbox); a database outage aborts the pass instead, and the mail is fetched again later.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import gc
import logging
import random
import re
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import aioimaplib
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.email.ingest import (
    MailToIngest,
    Outcome,
    do_ingest_email,
    do_ingest_emails,
    do_ingest_unparseable,
)
from api.channels.email.models import ImapCursor
from api.channels.email.prepare import PreparedMail, prepare_batch
from api.config import ImapSettings, Settings, get_settings
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.errors import ProviderError

log = logging.getLogger(__name__)

FETCH_BATCH = 25  # mails per UID FETCH: bounded memory, few round trips
# A pass with at least BATCH_MIN new mails (an initial sync, a backlog after downtime) stores
# them SYNC_BATCH per transaction, parsed in worker processes; fewer go one transaction each.
# None: the settings (EMAIL_SYNC_BATCH, EMAIL_SYNC_BATCH_BYTES, EMAIL_BATCH_MIN); a number
# set here overrides them (tests).
SYNC_BATCH: int | None = None
SYNC_BATCH_BYTES: int | None = None
BATCH_MIN: int | None = None


def _batch_limits() -> tuple[int, int, int]:
    """(mails per batch, bytes per batch, the backlog that switches to batches)."""
    settings = get_settings()
    return (
        SYNC_BATCH or settings.email_sync_batch,
        SYNC_BATCH_BYTES or settings.email_sync_batch_bytes,
        BATCH_MIN or settings.email_batch_min,
    )


IDLE_SECONDS = 9 * 60  # RFC 2177: re-issue IDLE well before the 30-minute server timeout
POLL_SECONDS = 60.0
MAX_BACKOFF_SECONDS = 300.0
COMMAND_TIMEOUT = 60.0
FETCH_TIMEOUT = 600.0  # a batch of large mails on a slow link; a dropped link is seen at once

T = TypeVar("T")

_UIDVALIDITY_RE = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_FETCH_START_RE = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_UID_RE = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)", re.IGNORECASE)
_INTERNALDATE_RE = re.compile(rb'\bINTERNALDATE "([^"]+)"', re.IGNORECASE)
_TRANSIENT_DB_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError, TimeoutError)


class ImapError(ProviderError):
    """The IMAP server refused a command or the connection broke."""

    code = "imap_error"


@dataclass(frozen=True)
class ImapAccount:
    host: str
    port: int
    user: str
    password: str
    ssl: bool = True
    folder: str = "INBOX"

    @classmethod
    def from_settings(cls, imap: ImapSettings) -> ImapAccount:
        if not (imap.host and imap.user and imap.password):
            raise ValueError("IMAP_HOST, IMAP_USER and IMAP_PASSWORD are required")
        return cls(
            host=imap.host,
            port=imap.port,
            user=imap.user,
            password=imap.password.get_secret_value(),
            ssl=imap.ssl,
            folder=imap.folder,
        )

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class FetchedMail:
    uid: int
    raw: bytes
    internaldate: dt.datetime | None = None


@dataclass
class IngestStats:
    fetched: int = 0
    stored: int = 0
    duplicates: int = 0
    bounces: int = 0
    unparsed: int = 0
    uidvalidity: int | None = None
    last_uid: int = 0
    conversations: set[int] = field(default_factory=set)


class ImapMailbox:
    """A thin, typed wrapper over one aioimaplib connection (swap the library here only)."""

    def __init__(self, account: ImapAccount, *, timeout: float = COMMAND_TIMEOUT) -> None:
        self.account = account
        self.timeout = timeout
        self.lost = asyncio.Event()
        self._client: aioimaplib.IMAP4 | None = None

    async def connect(self) -> None:
        context = ssl.create_default_context() if self.account.ssl else None
        client = aioimaplib.IMAP4(
            host=self.account.host,
            port=self.account.port,
            timeout=self.timeout,
            conn_lost_cb=lambda _exc: self.lost.set(),
            ssl_context=context,
        )
        self._client = client
        await self._call(client.wait_hello_from_server())
        _check(await self._call(client.login(self.account.user, self.account.password)), "LOGIN")

    @property
    def client(self) -> aioimaplib.IMAP4:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    @property
    def has_idle(self) -> bool:
        return bool(self.client.has_capability("IDLE"))

    async def select(self, folder: str) -> int:
        """Select the folder; returns its UIDVALIDITY."""
        response = _check(await self._call(self.client.select(_quote(folder))), "SELECT")
        for line in response.lines:
            found = _UIDVALIDITY_RE.search(bytes(line))
            if found:
                return int(found.group(1))
        raise ImapError("SELECT returned no UIDVALIDITY")

    async def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid`, ascending. UID SEARCH answers in one line: a FETCH listing of
        thousands of lines overflows aioimaplib's recursive parser (iroco-co/aioimaplib#118)."""
        response = _check(
            await self._call(self.client.uid_search(f"UID {last_uid + 1}:*", charset=None)),
            "UID SEARCH",
        )
        found: set[int] = set()
        # aioimaplib strips the "SEARCH" keyword: the untagged lines are bare numbers; the last
        # line is the tagged completion text.
        for line in response.lines[:-1]:
            tokens = bytes(line).split()
            if tokens and tokens[0].upper() == b"SEARCH":
                tokens = tokens[1:]
            if all(token.isdigit() for token in tokens):
                found.update(int(token) for token in tokens)
        # "n:*" always includes the highest UID, even when it is below n.
        return sorted(uid for uid in found if uid > last_uid)

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each message (a batch at a time, for the same reason)."""
        if not uids:
            return {}
        response = _check(
            await self._call(
                self.client.uid("fetch", ",".join(str(u) for u in uids), "(UID RFC822.SIZE)")
            ),
            "UID FETCH",
        )
        found: dict[int, int] = {}
        for line in response.lines:
            if not isinstance(line, bytes) or not _FETCH_START_RE.match(line):
                continue
            uid, size = _UID_RE.search(line), _SIZE_RE.search(line)
            if uid is not None:
                found[int(uid.group(1))] = int(size.group(1)) if size else 0
        return found

    async def fetch(self, uids: Sequence[int], *, header_only: bool = False) -> list[FetchedMail]:
        """The raw messages (or only their headers), without touching \\Seen."""
        if not uids:
            return []
        part = "BODY.PEEK[HEADER]" if header_only else "BODY.PEEK[]"
        response = await self._call(
            self.client.uid("fetch", ",".join(str(u) for u in uids), f"(UID INTERNALDATE {part})"),
            timeout=max(self.timeout, FETCH_TIMEOUT),
        )
        _check(response, "UID FETCH")
        return parse_fetch_lines(response.lines)

    async def noop(self) -> None:
        _check(await self._call(self.client.noop()), "NOOP")

    async def _call(self, command: Awaitable[T], *, timeout: float | None = None) -> T:
        """Await an aioimaplib command, but give up when the connection drops or the command
        hangs: after a protocol error aioimaplib may leave a command pending forever."""
        task = asyncio.ensure_future(command)
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=timeout or self.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if task in done:
            return task.result()
        task.cancel()
        raise ImapError("connection lost" if self.lost.is_set() else "IMAP command timed out")

    async def idle(self, *, seconds: float, stop: asyncio.Event) -> None:
        """Wait in IDLE until the server reports a change, `seconds` pass, `stop` is set or the
        connection drops (then raises, for the caller to reconnect)."""
        client = self.client
        idle = await client.idle_start(timeout=seconds)
        waiters = {
            asyncio.ensure_future(client.wait_server_push(timeout=seconds + 30)),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self.lost.wait()),
        }
        try:
            await asyncio.wait(waiters, timeout=seconds + 60, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        if self.lost.is_set():
            raise ImapError("connection lost during IDLE")
        if client.has_pending_idle():
            client.idle_done()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(idle, timeout=self.timeout)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            if not self.lost.is_set():
                await asyncio.wait_for(client.logout(), timeout=5)
        transport = getattr(client.protocol, "transport", None)
        if transport is not None:
            transport.close()


def parse_fetch_lines(lines: Sequence[bytes | bytearray]) -> list[FetchedMail]:
    """aioimaplib's FETCH lines → mails: a "<n> FETCH (…{size}" line, the literal as a
    bytearray, then ")" or " UID 5)" (servers may put attributes after the literal)."""
    mails: list[FetchedMail] = []
    uid: int | None = None
    raw: bytes | None = None
    internaldate: dt.datetime | None = None

    def flush() -> None:
        if uid is not None and raw is not None:
            mails.append(FetchedMail(uid=uid, raw=raw, internaldate=internaldate))

    for line in lines:
        if isinstance(line, bytearray):
            raw = bytes(line)
            continue
        if _FETCH_START_RE.match(line):
            flush()
            uid, raw, internaldate = None, None, None
        found_uid = _UID_RE.search(line)
        if found_uid and (uid is None):
            uid = int(found_uid.group(1))
        found_date = _INTERNALDATE_RE.search(line)
        if found_date:
            internaldate = _internaldate(found_date.group(1).decode())
    flush()
    return mails


async def ingest_once(
    account: ImapAccount,
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    max_message_bytes: int | None = None,
) -> IngestStats:
    """Connect, ingest everything new in the folder, log out (tests, CLI, cron)."""
    mailbox = ImapMailbox(account)
    try:
        await mailbox.connect()
        return await sync_mailbox(mailbox, maker=maker, max_message_bytes=max_message_bytes)
    finally:
        await mailbox.close()


async def sync_mailbox(
    mailbox: ImapMailbox,
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    max_message_bytes: int | None = None,
    stats: IngestStats | None = None,
) -> IngestStats:
    """(Re)select the folder and ingest every message above the stored cursor; the messages and
    the cursor move together in one transaction (per message, or per batch for a backlog)."""
    maker = maker or get_sessionmaker()
    stats = stats or IngestStats()
    account = mailbox.account
    uidvalidity = await mailbox.select(account.folder)
    stats.uidvalidity = uidvalidity
    async with unit_of_work(maker) as session:
        last_uid = await get_cursor(session, account=account, uidvalidity=uidvalidity)
    stats.last_uid = max(stats.last_uid, last_uid)
    pending = await mailbox.uids_after(last_uid)
    limit = max_message_bytes or _max_message_bytes()
    if len(pending) >= _batch_limits()[2]:
        await _sync_in_batches(mailbox, maker, uidvalidity, pending, limit, stats)
        return stats
    for start in range(0, len(pending), FETCH_BATCH):
        for mail, raw in await _fetch(mailbox, pending[start : start + FETCH_BATCH], limit):
            await _ingest_one(maker, account, uidvalidity, mail, raw, stats)
    return stats


async def _fetch(
    mailbox: ImapMailbox, uids: Sequence[int], limit: int
) -> list[tuple[FetchedMail, bytes]]:
    """The mails of `uids` in UID order; one too big to download comes as its headers and a
    note (`_oversized`)."""
    sizes = await mailbox.sizes(uids)
    small = [uid for uid, size in sizes.items() if size <= limit]
    large = {uid: size for uid, size in sizes.items() if size > limit}
    fetched = await mailbox.fetch(sorted(small))
    if large:
        fetched += await mailbox.fetch(sorted(large), header_only=True)
    found: list[tuple[FetchedMail, bytes]] = []
    for mail in sorted(fetched, key=lambda m: m.uid):
        note = large.get(mail.uid)
        found.append((mail, mail.raw if note is None else _oversized(mail.raw, note, limit)))
    return found


# Batches fetched and being parsed ahead of the one being stored (besides it): the parse workers
# keep going while a batch is stored, instead of idling once the next one is ready.
AHEAD = 1

_Loaded = tuple[list[tuple[FetchedMail, bytes]], list["asyncio.Future[list[PreparedMail]]"]]


async def _sync_in_batches(
    mailbox: ImapMailbox,
    maker: async_sessionmaker[AsyncSession],
    uidvalidity: int,
    pending: Sequence[int],
    limit: int,
    stats: IngestStats,
) -> None:
    """A large backlog (an initial sync): up to SYNC_BATCH mails (and SYNC_BATCH_BYTES) per
    transaction, the cursor moved in it.

    A pipeline: a producer task fetches the mails a FETCH_BATCH at a time and hands each chunk
    to the parse workers at once (fetching the next while they parse), up to AHEAD batches
    ahead of the one being stored; the batches are stored in UID order. At most AHEAD + 2
    batches are held in memory (the one stored, AHEAD ready, one being fetched). Nothing is
    committed ahead: a crash loses only what the database never had."""
    queue = collections.deque(pending)
    storage_dir = str(get_settings().storage_dir)
    max_attachment_bytes = get_settings().max_attachment_bytes
    sync_batch, sync_batch_bytes, _ = _batch_limits()
    ready: asyncio.Queue[_Loaded | BaseException | None] = asyncio.Queue(maxsize=AHEAD)
    parsing: set[asyncio.Future[list[PreparedMail]]] = set()

    async def produce() -> None:
        try:
            while queue:
                fetched: list[tuple[FetchedMail, bytes]] = []
                parts: list[asyncio.Future[list[PreparedMail]]] = []
                size = 0
                while queue and len(fetched) < sync_batch and size < sync_batch_bytes:
                    take = min(FETCH_BATCH, sync_batch - len(fetched), len(queue))
                    found = await _fetch(mailbox, [queue.popleft() for _ in range(take)], limit)
                    fetched += found
                    size += sum(len(raw) for _, raw in found)
                    parts.append(
                        asyncio.ensure_future(
                            prepare_batch(
                                [r for _, r in found],
                                storage_dir=storage_dir,
                                max_attachment_bytes=max_attachment_bytes,
                                pool_from=1,
                            )
                        )
                    )
                    parsing.add(parts[-1])
                    parts[-1].add_done_callback(parsing.discard)
                await ready.put((fetched, parts))
            await ready.put(None)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the storing side, which raises it
            await ready.put(exc)

    producer = asyncio.ensure_future(produce())
    # Storing a batch allocates many objects that survive a while (ORM rows, events), which
    # triggers the collector's full passes; each one walked the whole application heap (~25 %
    # of this process's CPU per mail). During the sync that heap is left out of them, and
    # handed back after: nothing is kept from collection past the sync. A process that froze
    # its loaded application at start-up (api.runtime) keeps it so; nothing more is frozen then.
    own_freeze = gc.get_freeze_count() == 0
    if own_freeze:
        gc.freeze()
    try:
        while (loaded := await ready.get()) is not None:
            if isinstance(loaded, BaseException):
                raise loaded
            fetched, parts = loaded
            prepared = [p for part in await asyncio.gather(*parts) for p in part]
            items = [(m, raw, p) for (m, raw), p in zip(fetched, prepared, strict=True)]
            await _ingest_batch(maker, mailbox.account, uidvalidity, items, stats)
    finally:
        if own_freeze:
            gc.unfreeze()
        producer.cancel()
        for part in list(parsing):
            part.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.gather(producer, *parsing, return_exceptions=True)


async def _ingest_batch(
    maker: async_sessionmaker[AsyncSession],
    account: ImapAccount,
    uidvalidity: int,
    items: Sequence[tuple[FetchedMail, bytes, PreparedMail]],
    stats: IngestStats,
) -> None:
    """One transaction: every mail of the batch and the cursor after the last one. A crash
    before the commit leaves neither (the batch is fetched again); a failure that is not the
    database's falls back to one mail at a time, so one bad mail is kept raw, not blocking."""
    if not items:
        return
    mails = [
        MailToIngest(
            raw=raw,
            prepared=prepared,
            received_at=mail.internaldate,
            source={
                "account": account.key,
                "folder": account.folder,
                "uidvalidity": uidvalidity,
                "uid": mail.uid,
            },
        )
        for mail, raw, prepared in items
    ]
    last = max(mail.uid for mail, _, _ in items)
    try:
        async with unit_of_work(maker) as session:
            results = await do_ingest_emails(session, mails)
            await do_advance_cursor(session, account=account, uidvalidity=uidvalidity, uid=last)
    except _TRANSIENT_DB_ERRORS:
        raise
    except Exception:
        log.exception(
            "e-mail batch (uids %s-%s) failed; ingesting it one mail at a time",
            items[0][0].uid,
            last,
        )
        for mail, raw, _ in items:
            await _ingest_one(maker, account, uidvalidity, mail, raw, stats)
        return
    for result in results:
        stats.fetched += 1
        if result.outcome is Outcome.STORED:
            if result.message_id is not None and result.conversation_id is None:
                stats.unparsed += 1  # kept raw: it could not be parsed
            stats.stored += 1
            if result.conversation_id is not None:
                stats.conversations.add(result.conversation_id)
        elif result.outcome is Outcome.BOUNCE:
            stats.bounces += 1
        else:
            stats.duplicates += 1
    stats.last_uid = max(stats.last_uid, last)


async def _ingest_one(
    maker: async_sessionmaker[AsyncSession],
    account: ImapAccount,
    uidvalidity: int,
    mail: FetchedMail,
    raw: bytes,
    stats: IngestStats,
) -> None:
    source = {
        "account": account.key,
        "folder": account.folder,
        "uidvalidity": uidvalidity,
        "uid": mail.uid,
    }
    stats.fetched += 1
    try:
        async with unit_of_work(maker) as session:
            result = await do_ingest_email(
                session, raw, received_at=mail.internaldate, source=source
            )
            await do_advance_cursor(session, account=account, uidvalidity=uidvalidity, uid=mail.uid)
    except _TRANSIENT_DB_ERRORS:
        raise
    except Exception as exc:
        log.exception("e-mail uid %s could not be ingested; keeping it raw", mail.uid)
        async with unit_of_work(maker) as session:
            result = await do_ingest_unparseable(
                session,
                raw,
                error=f"{type(exc).__name__}: {exc}",
                received_at=mail.internaldate,
                source=source,
            )
            await do_advance_cursor(session, account=account, uidvalidity=uidvalidity, uid=mail.uid)
        stats.unparsed += 1
    else:
        if result.outcome is Outcome.STORED:
            stats.stored += 1
            if result.conversation_id is not None:
                stats.conversations.add(result.conversation_id)
        elif result.outcome is Outcome.BOUNCE:
            stats.bounces += 1
        else:
            stats.duplicates += 1
    stats.last_uid = max(stats.last_uid, mail.uid)


async def run_imap_ingestion(
    settings: Settings,
    stop: asyncio.Event,
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    poll_seconds: float = POLL_SECONDS,
    idle_seconds: float = IDLE_SECONDS,
) -> None:
    """The worker's loop: reconcile on every connect, then IDLE (or poll) until `stop`.

    New answerable mail gets its bot turn from the inbound pipeline, after commit, through the
    turn scheduler installed in this context (the worker's); the worker's turn sweeper picks up
    anything a crash left behind.
    """
    account = ImapAccount.from_settings(settings.imap)
    backoff = 1.0
    while not stop.is_set():
        mailbox = ImapMailbox(account)
        try:
            await mailbox.connect()
            log.info("IMAP connected to %s, folder %s", account.key, account.folder)
            backoff = 1.0
            await sync_mailbox(mailbox, maker=maker)
            while not stop.is_set():
                if mailbox.has_idle:
                    await mailbox.idle(seconds=idle_seconds, stop=stop)
                else:
                    await _sleep(stop, poll_seconds)
                    await mailbox.noop()
                if stop.is_set():
                    break
                await sync_mailbox(mailbox, maker=maker)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "IMAP ingestion interrupted (%s: %s); reconnecting", type(exc).__name__, exc
            )
        finally:
            await mailbox.close()
        if stop.is_set():
            break
        await _sleep(stop, random.uniform(0.5, 1.0) * backoff)
        backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)


async def get_cursor(session: AsyncSession, *, account: ImapAccount, uidvalidity: int) -> int:
    """The last UID ingested for this mailbox generation (creating the cursor at 0)."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    await session.execute(
        insert(ImapCursor)
        .values(
            account=account.key,
            folder=account.folder,
            uidvalidity=uidvalidity,
            last_uid=0,
            created_at=utcnow(),
            updated_at=utcnow(),
        )
        .on_conflict_do_nothing(index_elements=["account", "folder", "uidvalidity"])
    )
    last = await session.scalar(
        sa.select(ImapCursor.last_uid).where(
            ImapCursor.account == account.key,
            ImapCursor.folder == account.folder,
            ImapCursor.uidvalidity == uidvalidity,
        )
    )
    return int(last or 0)


async def do_advance_cursor(
    session: AsyncSession, *, account: ImapAccount, uidvalidity: int, uid: int
) -> None:
    """Move the cursor forward (never back: two pollers may race on one mailbox)."""
    await session.execute(
        sa.update(ImapCursor)
        .where(
            ImapCursor.account == account.key,
            ImapCursor.folder == account.folder,
            ImapCursor.uidvalidity == uidvalidity,
            ImapCursor.last_uid < uid,
        )
        .values(last_uid=uid, updated_at=utcnow())
    )


def _oversized(header: bytes, size: int, limit: int) -> bytes:
    """A mail too big to fetch whole is stored by its headers with a note, so an analyst sees it
    arrived (and can open it in the mailbox) instead of it blocking ingestion."""
    head = header.rstrip(b"\r\n")
    note = (
        f"[E-mail de {size} bytes excede o limite de {limit} bytes para download automático; "
        "o original continua na caixa de entrada.]"
    )
    head = re.sub(rb"(?im)^content-(type|transfer-encoding):.*(\r?\n[ \t].*)*\r?\n?", b"", head)
    return head + b"\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + note.encode() + b"\r\n"


def _max_message_bytes() -> int:
    from api.config import get_settings

    # Room for several attachments at the limit plus base64's 4/3 growth.
    return get_settings().max_attachment_bytes * 4 + 1024 * 1024


_MONTHS = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
}  # fmt: skip
_INTERNALDATE_PARTS = re.compile(
    r"\s*(\d{1,2})-(\w{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"
)


def _internaldate(value: str) -> dt.datetime | None:
    """IMAP INTERNALDATE ("02-Mar-2026 10:00:00 -0300"), parsed without the C locale."""
    found = _INTERNALDATE_PARTS.match(value)
    if found is None or found.group(2).lower() not in _MONTHS:
        return None
    day, _, year, hour, minute, second, sign, off_h, off_m = found.groups()
    offset = dt.timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        local = dt.datetime(
            int(year), _MONTHS[found.group(2).lower()], int(day), int(hour), int(minute),
            int(second), tzinfo=dt.timezone(offset),
        )  # fmt: skip
    except ValueError:
        return None
    return local.astimezone(dt.UTC)


def _check(response: aioimaplib.Response, command: str) -> aioimaplib.Response:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines[-1:]).decode(errors="replace")
        raise ImapError(f"{command} failed: {response.result} {detail}"[:300])
    return response


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._/-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
