"""Process-wide tuning of the long-running processes (api.runtime)."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest
import uvloop

from api.runtime import CHATTY_LOGGERS, freeze_loaded_objects, new_event_loop, quiet_chatty_loggers


@pytest.fixture
def restore_levels() -> object:
    saved = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.usefixtures("restore_levels")
def test_per_request_client_lines_are_dropped_but_their_warnings_kept() -> None:
    logging.getLogger("twilio").setLevel(logging.NOTSET)
    quiet_chatty_loggers()
    for name in ("twilio.http_client", "twilio.async_http_client", "httpx"):
        logger = logging.getLogger(name)
        assert not logger.isEnabledFor(logging.INFO)
        assert logger.isEnabledFor(logging.WARNING)
    assert logging.getLogger("api").getEffectiveLevel() == logging.getLogger().level


@pytest.mark.usefixtures("restore_levels")
def test_the_app_quiets_them_when_it_is_built() -> None:
    from api.app import create_app

    logging.getLogger("twilio").setLevel(logging.NOTSET)
    create_app()
    assert not logging.getLogger("twilio.async_http_client").isEnabledFor(logging.INFO)


def test_the_worker_loop_is_uvloop_and_runs_coroutines() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        assert isinstance(runner.get_loop(), uvloop.Loop)
        assert runner.run(answer()) == 42


def test_freezing_moves_what_is_alive_out_of_the_collector() -> None:
    before = gc.get_freeze_count()
    try:
        freeze_loaded_objects()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


def test_httpx_finds_sniffio_instead_of_searching_for_it_on_every_request() -> None:
    """httpcore imports sniffio on every request; without it installed, each request's failed
    import searched sys.path again (pyproject declares it for that reason)."""
    import sys

    from httpcore._synchronization import current_async_library

    async def library() -> str:
        return current_async_library()

    assert asyncio.run(library()) == "asyncio"
    assert "sniffio" in sys.modules
