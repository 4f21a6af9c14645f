"""The CPU-bound half of ingesting a mail, done before any database work and away from the event
loop: parse, classify, sanitize the HTML. Pure functions of the raw bytes, so a batch can be
prepared in worker processes (an initial sync of thousands of mails) while the event loop stores
the previous batch; the results are small, picklable values.

A mail whose preparation fails is not lost: its error travels back and the ingestion keeps it
raw as an unanswerable message (the same as when the pipeline fails on it).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from api.channels.email.classify import Classification, classify
from api.channels.email.matching import MatchClues, clues_of
from api.channels.email.parser import ParsedEmail, content_hash, parse_email, sanitize_html
from api.config import get_settings
from api.runtime import watch_parent
from api.storage import StoredBlob, store_blob_at

log = logging.getLogger(__name__)

# Mails handed to a worker process at a time: large enough that pickling and the round trip are
# small next to parsing (~1-3 ms a mail), small enough to spread a batch over the workers.
CHUNK = 25


@dataclass(frozen=True)
class PreparedMail:
    """Everything the database half needs from one raw mail (the raw bytes stay with the
    caller). `parsed.message` keeps the headers only: the body is already in `text`, `html` and
    `attachments`, and shipping it back from a worker would cost more than parsing."""

    external_id: str
    parsed: ParsedEmail | None = None
    classification: Classification | None = None
    safe_html: str | None = None
    clues: MatchClues | None = None
    # The raw original, already written to storage (content-addressed: writing it again, after
    # a crash or a re-fetch, changes nothing); None when the caller stores it.
    raw_blob: StoredBlob | None = None
    # One per `parsed.attachments`, when written to storage here as well (type sniffed): the
    # attachment's bytes then stay behind (its `data` is empty) and the caller stores nothing.
    # None for one the caller must handle itself: empty or over the size limit (refused).
    attachment_blobs: tuple[StoredBlob | None, ...] = ()
    error: str | None = None  # set when parsing or classifying failed


def prepare_mail(
    raw: bytes, *, storage_dir: str | None = None, max_attachment_bytes: int | None = None
) -> PreparedMail:
    """Parse, classify and sanitize one mail; with `storage_dir`, also write its raw original
    and, with `max_attachment_bytes` too, every attachment within that limit."""
    try:
        parsed = parse_email(raw)
        classification = classify(parsed)
        safe_html = sanitize_html(parsed.html) if parsed.html else None
        clues = clues_of(parsed)
    except Exception as exc:  # kept raw by the ingestion, never lost
        return PreparedMail(external_id=content_hash(raw), error=f"{type(exc).__name__}: {exc}")
    parsed.message.set_payload("")  # headers only from here on (see PreparedMail)
    blobs: tuple[StoredBlob | None, ...] = ()
    if storage_dir and max_attachment_bytes is not None and parsed.attachments:
        root = Path(storage_dir)
        blobs = tuple(
            store_blob_at(root, a.data, a.content_type)
            if a.data and len(a.data) <= max_attachment_bytes
            else None
            for a in parsed.attachments
        )
        parsed = dataclasses.replace(
            parsed,
            attachments=tuple(
                a if blob is None else dataclasses.replace(a, data=b"")
                for a, blob in zip(parsed.attachments, blobs, strict=True)
            ),
        )
    return PreparedMail(
        external_id=parsed.message_id or content_hash(raw),
        parsed=parsed,
        classification=classification,
        safe_html=safe_html,
        clues=clues,
        raw_blob=(
            store_blob_at(Path(storage_dir), raw, "message/rfc822", sniff=False)
            if storage_dir
            else None
        ),
        attachment_blobs=blobs,
    )


def prepare_many(
    raws: Sequence[bytes],
    storage_dir: str | None = None,
    max_attachment_bytes: int | None = None,
) -> list[PreparedMail]:
    return [
        prepare_mail(raw, storage_dir=storage_dir, max_attachment_bytes=max_attachment_bytes)
        for raw in raws
    ]


def parse_workers() -> int:
    """Worker processes for large syncs: EMAIL_PARSE_WORKERS, default the machine's cores
    (0 prepares in a thread of this process: still off the event loop, but on one core)."""
    configured = get_settings().email_parse_workers
    return configured if configured is not None else (os.cpu_count() or 1)


_pool: concurrent.futures.ProcessPoolExecutor | None = None
_pool_size = 0


def _get_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    global _pool, _pool_size
    if _pool is None or _pool_size != workers:
        shutdown_pool()
        # spawn, not fork: this process runs an event loop and holds database connections.
        context = multiprocessing.get_context("spawn")
        _pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_worker_started,
            initargs=(LOW_PRIORITY,),
        )
        _pool_size = workers
    return _pool


# Parsing is background work: the workers run at the lowest CPU priority (Linux SCHED_IDLE,
# elsewhere nice +10), so the process storing the batches, the database and live traffic are
# never kept waiting for a core behind them (storing is a chain of short round trips, each
# paying the wait for a core: with the workers at the same priority a batch took ~2.5 times
# as long to store while the next one was parsed). They use whatever CPU is left, which on an
# idle machine is all of it; on a machine saturated by other work a sync slows down instead.
# Read when the pool starts (False: the workers keep this process's priority).
LOW_PRIORITY = True


def _worker_started(low_priority: bool) -> None:
    """In each worker process, once this module and the application it imports are loaded:
    those objects live as long as the process, so the collector's full passes (triggered every
    few thousand allocations while a batch is parsed) need not walk them again each time."""
    gc.freeze()
    watch_parent(_orphaned)  # its parent killed, a worker would wait for work for good
    if low_priority:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):  # not Linux
            with contextlib.suppress(OSError):
                os.nice(10)


def _orphaned() -> None:
    os._exit(0)


def shutdown_pool(*, cancel_futures: bool = True) -> None:
    global _pool
    pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=cancel_futures)


atexit.register(shutdown_pool)


async def prepare_batch(
    raws: Sequence[bytes],
    *,
    workers: int | None = None,
    storage_dir: str | None = None,
    max_attachment_bytes: int | None = None,
    pool_from: int = CHUNK,
) -> list[PreparedMail]:
    """Prepare mails off the event loop: in worker processes (chunks of CHUNK) when there are
    at least `pool_from` (enough to be worth it), else in a thread. A failing pool (a worker
    killed) falls back to a thread for this batch and is rebuilt for the next; the other calls
    running on it meanwhile are not cancelled (each falls back by itself if it fails too)."""
    workers = parse_workers() if workers is None else workers
    loop = asyncio.get_running_loop()
    if not raws:
        return []
    if workers <= 0 or len(raws) < pool_from:
        return await asyncio.to_thread(prepare_many, raws, storage_dir, max_attachment_bytes)
    pool = _get_pool(workers)
    chunks = [raws[i : i + CHUNK] for i in range(0, len(raws), CHUNK)]
    try:
        done = await asyncio.gather(
            *(
                loop.run_in_executor(pool, prepare_many, chunk, storage_dir, max_attachment_bytes)
                for chunk in chunks
            )
        )
    except Exception:  # a worker died (BrokenProcessPool), a result would not pickle, ...
        log.exception("e-mail parse workers failed; preparing this batch in a thread")
        if _pool is pool:
            shutdown_pool(cancel_futures=False)
        return await asyncio.to_thread(prepare_many, raws, storage_dir, max_attachment_bytes)
    return [prepared for chunk in done for prepared in chunk]
