"""Outside development the service refuses to start without a real SECRET_KEY; `tratativa
setup` keeps one for `make run` in var/secret_key (issue 10: an unset key silently used a
public value, so anyone could sign valid tokens)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from api.config import DEV_SECRET_KEY, Settings, check_secret_key, ensure_secret_key_file
from api.errors import ConfigurationError

pytestmark = pytest.mark.unit

TRATATIVA = Path(sys.executable).with_name("tratativa")
A_REAL_KEY = "Vq3n8JdKc1mR0yT5wXzL2pH7sB4fG9aE6uN_oQiM"


def settings(monkeypatch: pytest.MonkeyPatch, *, key: str | None, env: str | None) -> Settings:
    for name, value in (("SECRET_KEY", key), ("TRATATIVA_ENV", env)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        (None, "SECRET_KEY is not set"),
        (DEV_SECRET_KEY, "SECRET_KEY is not set"),
        ("change-me-to-a-long-random-value", "public example value"),  # .env.example's
        ("   ", "SECRET_KEY is not set"),
        ("short-but-random-7Hq", "shorter than 32 characters"),
    ],
)
def test_no_real_key_outside_development_is_refused(
    monkeypatch: pytest.MonkeyPatch, key: str | None, problem: str
) -> None:
    for env in (None, "production", "staging"):
        with pytest.raises(ConfigurationError) as refused:
            check_secret_key(settings(monkeypatch, key=key, env=env))
        assert problem in refused.value.message
        assert "\n" not in refused.value.message


def test_development_is_said_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not settings(monkeypatch, key=None, env=None).is_development
    check_secret_key(settings(monkeypatch, key=None, env="development"))
    check_secret_key(settings(monkeypatch, key=None, env="Development"))
    check_secret_key(settings(monkeypatch, key=A_REAL_KEY, env=None))


def test_setup_keeps_a_private_random_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "var" / "secret_key"
    unset = settings(monkeypatch, key=None, env=None)
    assert ensure_secret_key_file(path, settings=unset)
    key = path.read_text().strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    check_secret_key(settings(monkeypatch, key=key, env=None))

    assert not ensure_secret_key_file(path, settings=unset)  # kept, never replaced
    assert path.read_text().strip() == key
    other = tmp_path / "other"
    configured = settings(monkeypatch, key=A_REAL_KEY, env=None)
    assert not ensure_secret_key_file(other, settings=configured)
    assert not other.exists()


@pytest.mark.parametrize("command", [["serve", "--port", "1"], ["worker"]])
def test_serve_and_worker_refuse_in_one_line(command: list[str], tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "TRATATIVA_ENV")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'never-created.db'}"
    done = subprocess.run(
        [str(TRATATIVA), *command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("erro: SECRET_KEY is not set")
    assert "TRATATIVA_ENV=development" in lines[0]
    assert not (tmp_path / "never-created.db").exists()
