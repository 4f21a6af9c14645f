"""The worker process: outbox delivery, the sweeper of left-behind bot turns, engine commands
(pause/resume Rasa missed), WhatsApp media fetching (retries, and what a crashed process left),
e-mail ingestion."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal

from api.automations.runner import run_automations
from api.channels.mailboxes.runner import run_mailboxes
from api.channels.registry import build_senders
from api.config import Settings, get_settings
from api.conversations.scheduling import install_turn_scheduler
from api.db import unit_of_work
from api.engine.client import close_gateway, get_gateway
from api.engine.commands import deliver_engine_commands, do_prune_engine_commands
from api.engine.dispatch import BACKGROUND_TURNS, run_media_fetcher
from api.engine.ledger import do_prune_executions
from api.engine.turns import get_conversations_with_pending, process_conversation
from api.events.consumers import exclude_here, run_event_consumers
from api.operations.runner import run_operations
from api.outbox.worker import run_outbox_worker
from api.outreach.runner import run_outreach

log = logging.getLogger(__name__)
SWEEP_AFTER = dt.timedelta(seconds=30)
# The action ledger only has to outlive any retry of a turn (minutes); a week is plenty.
LEDGER_KEEP = dt.timedelta(days=7)
PRUNE_EVERY_SWEEPS = 360  # about hourly at one sweep every 10 s
PRUNE_COMMANDS_EVERY = 720  # about hourly at one pass every 5 s


async def sweep_turns_once(*, older_than: dt.timedelta = SWEEP_AFTER) -> int:
    """Handle conversations whose messages waited longer than `older_than` (crash, Rasa down)."""
    async with unit_of_work() as session:
        conversation_ids = await get_conversations_with_pending(session, older_than=older_than)
    handled = 0
    for conversation_id in conversation_ids:
        handled += await process_conversation(conversation_id, gateway=get_gateway())
    return handled


async def prune_ledger_once(*, older_than: dt.timedelta = LEDGER_KEEP) -> int:
    """Delete action-ledger rows no retry can need any more."""
    async with unit_of_work() as session:
        return await do_prune_executions(session, older_than=older_than)


async def run_turn_sweeper(stop: asyncio.Event, *, every_seconds: float = 10.0) -> None:
    sweeps = 0
    while not stop.is_set():
        try:
            await sweep_turns_once()
            if sweeps % PRUNE_EVERY_SWEEPS == 0:
                await prune_ledger_once()
        except Exception:
            log.exception("turn sweep failed")
        sweeps += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)


async def run_engine_commands(stop: asyncio.Event, *, every_seconds: float = 5.0) -> None:
    """Deliver the pauses and resumes Rasa has not taken yet (it was down, a process died);
    about hourly, forget those delivered more than a week ago."""
    passes = 0
    while not stop.is_set():
        try:
            await deliver_engine_commands(get_gateway())
            if passes % PRUNE_COMMANDS_EVERY == 0:
                async with unit_of_work() as session:
                    await do_prune_engine_commands(session, older_than=LEDGER_KEEP)
        except Exception:
            log.exception("engine command delivery failed")
        passes += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_seconds)


async def run_worker(settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    senders = build_senders(settings)
    if not settings.redis_url:
        # Without Redis the notification bus is in-process: browsers listen in the API process,
        # so live notifications are published there (inline, after each commit), never here.
        from api.notifications.live import NAME as LIVE_NOTIFICATIONS

        exclude_here(LIVE_NOTIFICATIONS)
        from api.operations.live import NAME as LIVE_ALERTS

        exclude_here(LIVE_ALERTS)
    # Mail the worker ingests gets its bot turn after commit, in this process (the tasks below
    # inherit the context).
    install_turn_scheduler(BACKGROUND_TURNS)
    log.info("worker started; channels: %s", ", ".join(sorted(senders)) or "none")
    tasks = [
        asyncio.create_task(run_outbox_worker(senders, stop=stop)),
        asyncio.create_task(run_turn_sweeper(stop)),
        asyncio.create_task(run_engine_commands(stop)),
        asyncio.create_task(run_media_fetcher(stop)),
        asyncio.create_task(run_event_consumers(stop)),
        asyncio.create_task(run_operations(settings, stop)),
        asyncio.create_task(run_automations(settings, stop)),
        asyncio.create_task(run_mailboxes(settings, stop)),
        asyncio.create_task(run_outreach(settings, stop)),
    ]
    if settings.imap.host:
        try:
            from api.channels.email.imap import run_imap_ingestion
        except ImportError:
            log.warning("IMAP configured but the e-mail channel is not available")
        else:
            tasks.append(asyncio.create_task(run_imap_ingestion(settings, stop)))
    await stop.wait()
    await asyncio.gather(*tasks, return_exceptions=True)
    await close_gateway()
