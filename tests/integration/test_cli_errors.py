"""Operator errors from the real `tratativa` entry point are one line and a non-zero exit
(issue 9, defect 6); `--debug` shows the traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import _default_url, create_scratch_database, drop_scratch_database

pytestmark = pytest.mark.integration

TRATATIVA = Path(sys.executable).with_name("tratativa")
MIGRATE = "erro: banco de dados sem migração: rode `tratativa db upgrade`"


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """A database that exists but was never migrated, on the backend under test."""
    url = create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
    yield url
    drop_scratch_database(url)


def tratativa(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRATATIVA), *args],
        env={
            **os.environ,
            "DATABASE_URL": database_url,
            "TRATATIVA_PASSWORD": "uma-senha-longa",
            "COLUMNS": "200",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.parametrize(
    "command",
    [
        ("users", "create", "ana@firma.com.br", "--role", "analyst"),
        ("brands", "create", "Acme", "--base", "2500", "--floor", "1500"),
        ("demo-seed",),
        ("users", "deactivate", "ana@firma.com.br"),
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_an_unmigrated_database_is_one_line_and_a_non_zero_exit(
    fresh_database: str, command: tuple[str, ...]
) -> None:
    result = tratativa(*command, database_url=fresh_database)
    assert result.returncode == 1
    assert error_lines(result) == [MIGRATE]
    assert "Traceback" not in result.stdout


def test_debug_shows_the_traceback(fresh_database: str) -> None:
    result = tratativa(
        "users", "create", "ana@firma.com.br", "--debug", database_url=fresh_database
    )
    assert result.returncode != 0
    assert "Traceback (most recent call last)" in result.stderr


def test_after_upgrade_the_same_command_works(fresh_database: str) -> None:
    assert tratativa("db", "upgrade", database_url=fresh_database).returncode == 0
    result = tratativa("users", "create", "ana@firma.com.br", database_url=fresh_database)
    assert result.returncode == 0, result.stderr
    again = tratativa("users", "create", "ana@firma.com.br", database_url=fresh_database)
    assert again.returncode == 1
    assert error_lines(again) == ["erro: Já existe um usuário com o e-mail ana@firma.com.br."]


def test_an_unreachable_database_is_one_line() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    url = f"postgresql+asyncpg://postgres:s3cr3t@127.0.0.1:{port}/tratativa"
    result = tratativa("users", "create", "ana@firma.com.br", database_url=url)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith("erro: não foi possível conectar ao banco de dados")
    assert f"127.0.0.1:{port}" in line
    assert "s3cr3t" not in result.stderr + result.stdout


def test_a_sqlite_file_that_cannot_be_opened_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "nao-existe" / "x.db"
    url = f"sqlite+aiosqlite:///{path}"
    for command in (("db", "upgrade"), ("users", "create", "ana@firma.com.br")):
        result = tratativa(*command, database_url=url)
        assert result.returncode == 1
        assert error_lines(result) == [f"erro: não foi possível abrir o arquivo SQLite {path}"]


def test_a_missing_file_or_argument_is_one_line(fresh_database: str, tmp_path: Path) -> None:
    missing = tmp_path / "nao-existe.csv"
    result = tratativa("import", "cases", str(missing), database_url=fresh_database)
    assert result.returncode == 2
    [line] = error_lines(result)
    assert line.startswith("erro: ") and str(missing) in line and "does not exist" in line

    result = tratativa("users", "create", database_url=fresh_database)
    assert result.returncode == 2
    assert error_lines(result) == [
        "erro: Missing argument 'email'. (veja `tratativa users create --help`)"
    ]

    result = tratativa("brands", "create", "X", "--base", "muito", database_url=fresh_database)
    assert result.returncode == 2
    assert len(error_lines(result)) == 1


def test_an_unknown_migration_is_one_line(fresh_database: str) -> None:
    result = tratativa("db", "upgrade", "--revision", "nao-existe", database_url=fresh_database)
    assert result.returncode == 1
    assert error_lines(result) == [
        "erro: migração: Can't locate revision identified by 'nao-existe'"
    ]


def test_several_service_processes_without_redis_is_one_line(fresh_database: str) -> None:
    # Live notifications reach a browser connected to another process only through Redis.
    result = tratativa(
        "serve", "--workers", "2", database_url=fresh_database, REDIS_URL="", PORT="1"
    )
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith("erro: --workers acima de 1 exige REDIS_URL")
