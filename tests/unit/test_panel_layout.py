"""The panel reads through read models: no SQL in api/panel/ (issue 11)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PANEL = Path(__file__).resolve().parents[2] / "api" / "panel"
SQL = re.compile(
    r"\bsa\.(select|insert|update|delete|func|text)\b"
    r"|\bimport sqlalchemy as\b"
    r"|\bfrom sqlalchemy import\b"
    r"|\bsqlalchemy\.orm\b"
    r"|\.execute\("
    r"|\.scalars?\("
    r"|\bsession\.get\("
)


def test_the_scan_finds_sql_where_there_is_some() -> None:
    for line in (
        "rows = await session.execute(query)",
        "x = await session.scalar(sa.select(Brand))",
        "items = (await session.scalars(q)).all()",
        "import sqlalchemy as sa",
        "attachment = await session.get(Attachment, 1)",
    ):
        assert SQL.search(line), line


def test_no_module_of_the_panel_runs_sql() -> None:
    modules = sorted(PANEL.rglob("*.py"))
    assert len(modules) >= 7  # routes, events, files, formatting, views, errors, auth
    offending = [
        f"{path.relative_to(PANEL)}:{number}: {line.strip()}"
        for path in modules
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]
    assert offending == []
