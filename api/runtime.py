"""Process-wide runtime tuning for the long-running processes (service, worker)."""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# How often a child process checks that the process that started it is still there.
PARENT_CHECK_SECONDS = 1.0


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


def watch_parent(on_orphaned: Callable[[], None], *, parent: int | None = None) -> threading.Thread:
    """Call `on_orphaned` (in a daemon thread) once this process's parent is gone.

    A child process is only ever told to stop by its parent: when that parent is SIGKILLed (the
    OOM killer, kill -9) nothing tells the children. A ProcessPoolExecutor's workers then wait
    on their task queue for good, and uvicorn's service processes keep serving the port, so the
    restarted service cannot bind it. The thread checks every PARENT_CHECK_SECONDS whether the
    process was handed to another parent (the reaper)."""
    watched = os.getppid() if parent is None else parent

    def watch() -> None:
        while os.getppid() == watched:
            time.sleep(PARENT_CHECK_SECONDS)
        on_orphaned()

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


def stop_with_supervisor() -> None:
    """In a service process started by uvicorn's supervisor (`--workers` above 1): shut down
    gracefully (SIGTERM: in-flight requests finish, the lifespan's shutdown runs) when the
    supervisor is gone. A process started any other way has no supervisor to outlive."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None or supervisor.pid is None:
        return

    def orphaned() -> None:
        log.warning("the service's supervisor (pid %s) is gone: stopping", supervisor.pid)
        os.kill(os.getpid(), signal.SIGTERM)

    watch_parent(orphaned, parent=supervisor.pid)
