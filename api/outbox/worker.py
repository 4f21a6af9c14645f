"""The outbox worker: claim due rows, send each through its channel, record the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.conversations.models import Channel
from api.db import get_sessionmaker, unit_of_work
from api.errors import ChannelDeliveryError
from api.outbox.senders import ChannelSender, Envelope
from api.outbox.service import (
    claim_envelopes,
    do_mark_failed,
    do_mark_sent,
    do_mark_sent_at_once,
)

log = logging.getLogger(__name__)


async def deliver_due(
    senders: Mapping[Channel, ChannelSender],
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
    limit: int = 20,
    conversation_id: int | None = None,
) -> int:
    """One pass: returns how many rows were attempted."""
    maker = maker or get_sessionmaker()
    async with unit_of_work(maker) as session:
        items = await claim_envelopes(session, limit=limit, conversation_id=conversation_id)
    return await send_claimed(senders, items, maker=maker)


async def send_claimed(
    senders: Mapping[Channel, ChannelSender],
    items: Sequence[tuple[int, Envelope]],
    *,
    maker: async_sessionmaker[AsyncSession] | None = None,
) -> int:
    """Send outbox rows this process has claimed (leased), in order, and record each outcome.
    Returns how many were attempted."""
    maker = maker or get_sessionmaker()
    for item_id, envelope in items:
        sender = senders.get(envelope.channel)
        try:
            if sender is None:
                raise ChannelDeliveryError(
                    f"canal {envelope.channel} não configurado", retryable=True
                )
            result = await sender.send(envelope)
        except ChannelDeliveryError as exc:
            async with unit_of_work(maker) as session:
                retry = await do_mark_failed(
                    session,
                    item_id=item_id,
                    error=exc.message,
                    retryable=exc.retryable,
                    retry_after_seconds=exc.retry_after_seconds,
                )
            log.warning(
                "delivery of message %s failed (retry=%s): %s",
                envelope.message_id,
                retry,
                exc.message,
            )
        except Exception as exc:  # a bug or an unexpected provider answer: retry, keep the row
            log.exception("unexpected error delivering message %s", envelope.message_id)
            async with unit_of_work(maker) as session:
                await do_mark_failed(
                    session, item_id=item_id, error=type(exc).__name__, retryable=True
                )
        else:
            bind = maker.kw.get("bind")
            if isinstance(bind, AsyncEngine) and await do_mark_sent_at_once(
                bind, item_id=item_id, result=result
            ):
                continue
            async with unit_of_work(maker) as session:
                await do_mark_sent(session, item_id=item_id, result=result)
    return len(items)


async def run_outbox_worker(
    senders: Mapping[Channel, ChannelSender],
    *,
    stop: asyncio.Event,
    idle_seconds: float = 0.5,
) -> None:
    """Deliver until `stop` is set; sleeps only when there was nothing to do."""
    try:
        await _deliver_until(senders, stop=stop, idle_seconds=idle_seconds)
    finally:
        for sender in senders.values():
            close = getattr(sender, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()


async def _deliver_until(
    senders: Mapping[Channel, ChannelSender], *, stop: asyncio.Event, idle_seconds: float
) -> None:
    while not stop.is_set():
        try:
            attempted = await deliver_due(senders)
        except Exception:
            log.exception("outbox pass failed")
            attempted = 0
        if attempted == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
