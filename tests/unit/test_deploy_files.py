"""The checked-in production supervision (deploy/systemd, Procfile) restarts every process and
starts commands that exist."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest

from api.cli.main import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
COMMANDS = {c.name for c in app.registered_commands}


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(path)
    return parser


def _runs(command: str) -> None:
    argv = shlex.split(command)
    program = argv[0].removeprefix("/opt/tratativa/")
    if program.endswith("/tratativa"):
        assert argv[1] in COMMANDS, command
    else:
        assert (ROOT / program).is_file(), command


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_every_unit_restarts_its_process_and_never_gives_up(path: Path) -> None:
    unit = _unit(path)
    assert unit["Service"]["Restart"] == "always"
    assert unit["Unit"]["StartLimitIntervalSec"] == "0"
    assert unit["Install"]["WantedBy"] == "tratativa.target"
    _runs(unit["Service"]["ExecStart"])


def test_the_target_wants_every_unit() -> None:
    wants = set(_unit(ROOT / "deploy" / "systemd" / "tratativa.target")["Unit"]["Wants"].split())
    assert wants == {p.name for p in UNITS}


def test_the_procfile_runs_the_same_processes() -> None:
    lines = [
        line
        for line in (ROOT / "Procfile").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    processes = dict(line.split(":", 1) for line in lines)
    assert set(processes) == {"web", "worker", "rasa"}
    for command in processes.values():
        _runs(command.strip())
