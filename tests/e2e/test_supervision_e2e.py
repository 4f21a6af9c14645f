"""`make run` supervises its processes (issue 9, durability): the worker killed with -9 under
the real scripts/run.sh stack (service, worker, real Rasa, Twilio simulator) is started again
with a log line, nothing else goes down, and the next message is still answered."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import _default_url, create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 420.0
DEMO_PHONE = "+5511987654321"  # a demo case's infringer (api/demo.py)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunStack:
    process: subprocess.Popen[bytes]
    log: Path
    run_dir: Path
    sim_url: str

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def pid(self, name: str) -> int:
        return int((self.run_dir / f"{name}.pid").read_text().strip())

    def sim(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            self.sim_url + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=40) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer

    def write(self, text: str) -> int:
        """The infringer writes; returns the simulator's last message seq before the reply."""
        before = int(self.sim("/_sim/messages?to=whatsapp:%2B0")["last_seq"])
        posted = self.sim("/_sim/inbound", {"from": DEMO_PHONE, "body": text})
        assert posted.get("status") == 200, posted
        return before

    def replies_after(self, seq: int, *, timeout: float = 60.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        to = f"whatsapp:{DEMO_PHONE}".replace("+", "%2B")
        while time.monotonic() < deadline:
            found = self.sim(f"/_sim/messages?to={to}&after={seq}&wait=5")["messages"]
            if found:
                return list(found)
        return []


def _wait_for(stack: RunStack, pattern: str, *, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, stack.output())
        if found:
            return found
        if stack.process.poll() is not None:
            raise AssertionError(f"run.sh exited ({stack.process.returncode}):\n{stack.output()}")
        time.sleep(0.5)
    raise AssertionError(f"{pattern!r} not seen in {timeout}s:\n{stack.output()[-4000:]}")


@pytest.fixture
def run_stack(tmp_path: Path) -> Iterator[RunStack]:
    if not list((ROOT / "models").glob("*.tar.gz")):
        pytest.skip("no trained Rasa model (make train)")
    database_url = create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
    port, rasa_port, sim_port = _free_port(), _free_port(), _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWILIO_", "SMTP_", "IMAP_")) and key not in {"REDIS_URL"}
    }
    env.update(
        DATABASE_URL=database_url,
        PORT=str(port),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        RASA_PORT=str(rasa_port),
        RASA_URL=f"http://127.0.0.1:{rasa_port}",
        ACTION_ENDPOINT_URL=f"http://127.0.0.1:{port}/actions/webhook",
        TWILIO_SIMULATOR_PORT=str(sim_port),
        RUN_DIR=str(tmp_path / "run"),
        SECRET_KEY="supervision-e2e-secret-key-long-enough-for-hs256-0123456789",
        STORAGE_DIR=str(tmp_path / "storage"),
    )
    log = tmp_path / "run.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(ROOT / "scripts" / "run.sh")],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = RunStack(process, log, tmp_path / "run", f"http://127.0.0.1:{sim_port}")
    try:
        _wait_for(stack, r"Tratativa is running", timeout=STARTUP_SECONDS)
        yield stack
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # run.sh's trap stops its supervisors
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the group this test started
            process.wait(timeout=30)
        drop_scratch_database(database_url)


def test_a_worker_killed_with_9_is_restarted_and_the_next_message_is_answered(
    run_stack: RunStack,
) -> None:
    first = run_stack.write("oi")
    assert run_stack.replies_after(first), run_stack.output()[-4000:]
    _wait_for(run_stack, r"worker started", timeout=60)

    others = {name: run_stack.pid(name) for name in ("service", "rasa", "twilio-simulator")}
    worker = run_stack.pid("worker")
    os.kill(worker, signal.SIGKILL)

    line = _wait_for(
        run_stack,
        rf"run: worker \(pid {worker}\) exited with status (\d+) after \d+s; restarting in \d+s",
        timeout=30,
    )
    assert line.group(1) == "137"  # 128 + SIGKILL
    deadline = time.monotonic() + 60
    while run_stack.pid("worker") == worker and time.monotonic() < deadline:
        time.sleep(0.2)
    restarted = run_stack.pid("worker")
    assert restarted != worker
    os.kill(restarted, 0)  # alive
    deadline = time.monotonic() + 60
    while run_stack.output().count("worker started") < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert run_stack.output().count("worker started") == 2

    # Nothing else went down with it.
    assert {name: run_stack.pid(name) for name in others} == others
    for pid in others.values():
        os.kill(pid, 0)
    assert run_stack.process.poll() is None

    second = run_stack.write("quanto tenho que pagar?")
    replies = run_stack.replies_after(second)
    assert replies, run_stack.output()[-4000:]
    assert all(reply["to"] == f"whatsapp:{DEMO_PHONE}" for reply in replies)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_stopping_run_sh_stops_every_supervised_process(run_stack: RunStack) -> None:
    pids = [run_stack.pid(n) for n in ("service", "rasa", "twilio-simulator", "worker")]
    run_stack.process.send_signal(signal.SIGTERM)
    run_stack.process.wait(timeout=60)
    deadline = time.monotonic() + 30
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in pids if _alive(pid)] == []
    assert "exited with status" not in run_stack.output()  # stopped, not restarted
