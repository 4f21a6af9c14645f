"""Worker loop: sync every mailbox; one failing never blocks the others.

Each pass leases the due mailboxes (a push hint arrived, the poll interval passed, or a failing
or throttled one's wait is over), runs them concurrently, each under its own timeout, and records
per mailbox what happened: the new cursor, or the error with a backoff (2, 4, 8 … s up to 30 min)
or the provider's Retry-After. After a successful sync the Gmail watch / Graph subscription is
renewed when it is missing or close to expiring. Several workers may run this: the lease
(`locked_until`, taken with SKIP LOCKED) gives each mailbox to one of them at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.mailboxes.base import Connector, MailboxRef, SyncStats, Throttled
from api.channels.mailboxes.gmail import GmailConnector
from api.channels.mailboxes.graph import GraphConnector
from api.channels.mailboxes.imap import ImapConnector
from api.channels.mailboxes.models import MailboxProvider
from api.channels.mailboxes.service import (
    claim_due,
    do_ensure_settings_mailbox,
    do_record_failure,
    do_record_success,
    do_release,
)
from api.config import Settings, get_settings
from api.db import get_sessionmaker, unit_of_work, utcnow

log = logging.getLogger(__name__)

TICK_SECONDS = 2.0  # how soon a push hint (a flag in the table) is acted on
SYNC_TIMEOUT_SECONDS = 600.0

_connectors: dict[MailboxProvider, Connector] = {}


def get_connectors() -> dict[MailboxProvider, Connector]:
    """One connector per provider per process (they cache access tokens)."""
    if not _connectors:
        _connectors[MailboxProvider.IMAP] = ImapConnector()
        _connectors[MailboxProvider.GMAIL] = GmailConnector()
        _connectors[MailboxProvider.GRAPH] = GraphConnector()
    return _connectors


@dataclass(frozen=True)
class PassResult:
    name: str
    ok: bool
    stats: SyncStats | None = None
    error: str | None = None
    retry_at: dt.datetime | None = None


async def sync_due(
    *,
    now: dt.datetime | None = None,
    names: Sequence[str] | None = None,
    force: bool = False,
    maker: async_sessionmaker[AsyncSession] | None = None,
    connectors: Mapping[MailboxProvider, Connector] | None = None,
    poll_seconds: float | None = None,
    timeout: float = SYNC_TIMEOUT_SECONDS,
) -> list[PassResult]:
    """One pass over the due mailboxes (all of `names` with `force`), waiting for all."""
    maker = maker or get_sessionmaker()
    connectors = connectors or get_connectors()
    due = await _claim(maker, now=now, names=names, force=force, poll_seconds=poll_seconds)
    if not due:
        return []
    return list(
        await asyncio.gather(
            *(
                _one(box, last, connectors[box.provider], maker=maker, timeout=timeout)
                for box, last in due
            )
        )
    )


async def _claim(
    maker: async_sessionmaker[AsyncSession],
    *,
    now: dt.datetime | None = None,
    names: Sequence[str] | None = None,
    force: bool = False,
    poll_seconds: float | None = None,
) -> list[tuple[MailboxRef, dt.datetime | None]]:
    poll = dt.timedelta(seconds=poll_seconds or get_settings().mailboxes.poll_seconds)
    async with unit_of_work(maker) as session:
        rows = await claim_due(
            session, now=now or utcnow(), poll_every=poll, names=names, force=force
        )
        return [(MailboxRef.of(row), row.last_synced_at) for row in rows]


async def _one(
    box: MailboxRef,
    last_synced_at: dt.datetime | None,
    connector: Connector,
    *,
    maker: async_sessionmaker[AsyncSession],
    timeout: float,
) -> PassResult:
    try:
        stats = await asyncio.wait_for(
            connector.sync(box, last_synced_at=last_synced_at), timeout=timeout
        )
    except asyncio.CancelledError:
        # Shutting down: give the lease back so the next worker need not wait for it to lapse.
        with contextlib.suppress(Exception):
            async with unit_of_work(maker) as session:
                await asyncio.shield(do_release(session, mailbox_id=box.id))
        raise
    except Exception as exc:
        retry_after = exc.retry_after if isinstance(exc, Throttled) else None
        error = f"{type(exc).__name__}: {exc}"[:500]
        if not isinstance(exc, Throttled):
            log.warning("mailbox %s: sync failed: %s", box.name, error)
        async with unit_of_work(maker) as session:
            retry_at = await do_record_failure(
                session, mailbox_id=box.id, error=error, now=utcnow(), retry_after=retry_after
            )
        return PassResult(box.name, ok=False, error=error, retry_at=retry_at)
    async with unit_of_work(maker) as session:
        await do_record_success(session, mailbox_id=box.id, cursor=stats.cursor, now=utcnow())
    try:
        await asyncio.wait_for(connector.renew_push(box), timeout=60)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # the poll still syncs; the next pass tries the renewal again
        log.warning("mailbox %s: push renewal failed: %s: %s", box.name, type(exc).__name__, exc)
    if stats.stored or stats.bounces or stats.full_resync:
        log.info(
            "mailbox %s: %d new, %d duplicates, %d bounces%s",
            box.name,
            stats.stored,
            stats.duplicates,
            stats.bounces,
            " (full resync)" if stats.full_resync else "",
        )
    return PassResult(box.name, ok=True, stats=stats)


def _forget(running: dict[int, asyncio.Task[PassResult]], key: int, _task: object) -> None:
    running.pop(key, None)


async def run_mailboxes(settings: Settings, stop: asyncio.Event) -> None:
    """Runs until `stop` is set. Each mailbox's pass is a task of its own: a slow or hanging
    mailbox holds only its own lease, never the passes of the others."""
    maker = get_sessionmaker()
    connectors = get_connectors()
    running: dict[int, asyncio.Task[PassResult]] = {}
    try:
        async with unit_of_work(maker) as session:
            await do_ensure_settings_mailbox(session, imap=settings.imap)
    except Exception:  # shown in the panel only; the IMAP loop itself does not need the row
        log.exception("could not record the IMAP_* mailbox")
    while not stop.is_set():
        try:
            for box, last in await _claim(maker, poll_seconds=settings.mailboxes.poll_seconds):
                if box.id in running:
                    continue
                task = asyncio.create_task(
                    _one(box, last, connectors[box.provider], maker=maker,
                         timeout=SYNC_TIMEOUT_SECONDS)
                )  # fmt: skip
                running[box.id] = task
                task.add_done_callback(functools.partial(_forget, running, box.id))
        except asyncio.CancelledError:
            raise
        except Exception:  # the database is down: try again at the next tick
            log.exception("mailbox pass failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=TICK_SECONDS)
    for task in list(running.values()):
        task.cancel()
    await asyncio.gather(*running.values(), return_exceptions=True)
