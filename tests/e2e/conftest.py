"""A real Rasa server (scripts/rasa-serve.sh) started once per session for e2e tests."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from tests.e2e.stack import Stack

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120.0


@dataclass(frozen=True)
class RasaServer:
    """Where the test server listens and the gateway secret it expects."""

    url: str
    secret: str

    @property
    def webhook(self) -> str:
        return f"{self.url}/webhooks/tratativa/webhook"

    @property
    def events(self) -> str:
        return f"{self.url}/webhooks/tratativa/events"

    @property
    def health(self) -> str:
        return f"{self.url}/webhooks/tratativa/"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _newest_model() -> Path | None:
    models = sorted((REPO_ROOT / "models").glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def _wait_until_healthy(
    process: subprocess.Popen[bytes], server: RasaServer, port: int, log: Path
) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Rasa exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        # Poll the socket first: connecting is cheap and fails fast until Sanic listens.
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        try:
            if httpx.get(server.health, timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"Rasa did not answer within {STARTUP_SECONDS:.0f} s:\n{log.read_text()[-3000:]}"
    )


@contextmanager
def running_rasa(*, action_endpoint_url: str, action_token: str = "") -> Iterator[RasaServer]:
    """scripts/rasa-serve.sh on a free loopback port, stopped (process group) on exit."""
    if not (REPO_ROOT / ".venv-rasa" / "bin" / "rasa").exists():
        pytest.skip("no Rasa environment (.venv-rasa); run `make .venv-rasa/.installed`")
    model = _newest_model()
    if model is None:
        pytest.skip("no trained model in models/; run `make train` first")

    port = _free_port()
    server = RasaServer(url=f"http://127.0.0.1:{port}", secret=secrets.token_urlsafe(24))
    env = {
        **os.environ,
        "RASA_GATEWAY_SECRET": server.secret,
        "RASA_HOST": "127.0.0.1",
        "RASA_PORT": str(port),
        "RASA_MODEL": str(model),
        "ACTION_ENDPOINT_URL": action_endpoint_url,
        "ACTION_ENDPOINT_TOKEN": action_token,
    }
    env.pop("REDIS_URL", None)
    log = Path(tempfile.mkstemp(prefix="rasa-e2e-", suffix=".log")[1])
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(REPO_ROOT / "scripts" / "rasa-serve.sh")],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_until_healthy(process, server, port, log)
        yield server
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture(scope="session")
def rasa_server() -> Iterator[RasaServer]:
    """A Rasa server with no action server behind it (gateway-level tests)."""
    with running_rasa(
        action_endpoint_url=f"http://127.0.0.1:{_free_port()}/actions/webhook"
    ) as server:
        yield server


@pytest.fixture(scope="module")
async def stack(database_url: str) -> AsyncIterator[Stack]:
    """The whole product with a real Rasa; see tests/e2e/stack.py. Module-scoped: its worker
    and environment must not outlive the module that uses it."""
    from tests.e2e.stack import running_stack

    async with running_stack() as running:
        yield running
