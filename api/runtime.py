"""Process-wide runtime tuning for the long-running processes (service, worker)."""

from __future__ import annotations

import asyncio
import gc


def freeze_loaded_objects() -> None:
    """Move every object alive now into the collector's permanent generation.

    Called once a long-running process has loaded the application. Its modules, classes,
    mappers, compiled statements and templates live as long as the process, yet every full
    collection walked all of them again: py-spy found the cyclic collector at about a quarter of
    the service's CPU during an e-mail backlog. Frozen objects are still reference-counted (and
    freed when their count drops to zero); only the cycle collector stops scanning them, so the
    cost is at most the start-up's own garbage cycles, kept for the life of the process.
    """
    gc.collect()
    gc.freeze()


# Client libraries that log every request at INFO: the Twilio client writes about ten lines per
# message sent (URL, each header, status), httpx one per call to Rasa or a provider. Our own
# records say what was sent (outbox, timeline, events) and failures are logged as warnings, so
# per-request lines only cost CPU under load (~3 % of the service's) and fill the logs.
# ("twilio" covers its sync and async clients: twilio.http_client, twilio.async_http_client.)
CHATTY_LOGGERS = ("twilio", "httpx")


def quiet_chatty_loggers() -> None:
    """Raise the client libraries' per-request loggers to WARNING (their errors still show)."""
    import logging

    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop when installed (uvicorn[standard] brings it, and the service runs
    on it through uvicorn), else asyncio's: the worker's loop costs less CPU per wake-up."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()
