"""`tratativa serve --workers 2`: when uvicorn's supervisor is killed with -9 (the OOM killer), its
service processes stop too, so the port is free for the restarted service. Before, they kept
serving the port on their own, and the restart could not bind it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.migrate import upgrade
from tests.conftest import _default_url, create_scratch_database, drop_scratch_database
from tests.helpers.processes import running

pytestmark = pytest.mark.integration

TRATATIVA = Path(sys.executable).with_name("tratativa")
STARTUP_SECONDS = 120.0
STOP_SECONDS = 30.0  # each process checks its supervisor every second, then shuts down


@pytest.fixture
def database_url() -> Iterator[str]:
    url = create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
    upgrade(url)
    yield url
    drop_scratch_database(url)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _service_processes(pid: int) -> list[int]:
    """The processes uvicorn's supervisor spawned to serve (not multiprocessing's resource
    tracker, its other child)."""
    found = subprocess.run(
        ["ps", "-ww", "-o", "pid=,args=", "--ppid", str(pid)],
        capture_output=True,
        text=True,
        check=False,
    )
    return [int(line.split()[0]) for line in found.stdout.splitlines() if "spawn_main" in line]


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
            return True
    except urllib.error.HTTPError:
        return True  # it answered (a 503 says a dependency is down, not that nobody listens)
    except OSError:
        return False


def _can_bind(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_service_processes_stop_when_their_supervisor_is_killed(
    database_url: str, tmp_path: Path
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        "STORAGE_DIR": str(tmp_path / "storage"),
        "PORT": str(port),
        "SECRET_KEY": "a-test-only-secret-key-" + "x" * 32,
    }
    with log.open("wb") as output:
        supervisor = subprocess.Popen(
            [str(TRATATIVA), "serve", "--workers", "2", "--host", "127.0.0.1"],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    processes: list[int] = []
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and not (
            _answers(port) and len(processes := _service_processes(supervisor.pid)) == 2
        ):
            assert supervisor.poll() is None, log.read_text()[-3000:]
            time.sleep(0.2)
        assert len(processes) == 2 and _answers(port), log.read_text()[-3000:]

        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + STOP_SECONDS
        while time.monotonic() < deadline and any(running(pid) for pid in processes):
            time.sleep(0.1)
        assert not any(running(pid) for pid in processes), log.read_text()[-3000:]
        assert not _answers(port)
        assert _can_bind(port)  # a restarted service can listen again
        assert "supervisor" in log.read_text()  # each said why it stopped
    finally:
        for pid in [supervisor.pid, *processes]:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        supervisor.wait(timeout=10)
