"""`tratativa rules` from the real entry point: a rule naming an illegal status move is refused
in one line (exit 1) and nothing is stored. (Each CLI start costs seconds: the other commands
share the service functions the API tests cover.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.automations.models import AutomationRule
from api.db import unit_of_work
from tests.integration.test_cli_errors import error_lines, tratativa

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url"), pytest.mark.slow]


def rule_file(tmp_path: Path, name: str, **rule: object) -> Path:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"name": name, **rule}), encoding="utf-8")
    return path


async def test_rules_cli_refuses_an_illegal_move_in_one_line(
    database_url: str, tmp_path: Path
) -> None:
    illegal = rule_file(
        tmp_path,
        "cli-ilegal",
        trigger={"type": "event", "event": "note.added"},
        conditions={"statuses": ["NOTIFICADO"]},
        actions=[{"type": "move_status", "to": "EM_NEGOCIACAO"}],
    )
    refused = tratativa("rules", "create", str(illegal), database_url=database_url)
    assert refused.returncode == 1
    assert error_lines(refused) == [
        "erro: Transição de status não permitida: Notificado → Em negociação. A partir de "
        "Notificado são permitidas: Em atendimento, Sem resposta."
    ]
    async with unit_of_work() as session:
        stored = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AutomationRule)
            .where(AutomationRule.name == "cli-ilegal")
        )
    assert stored == 0
