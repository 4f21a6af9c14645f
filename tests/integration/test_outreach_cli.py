"""`tratativa outreach send` from the real entry point: the dry run, a send by brand and status
with its per-case report, the queue outside business hours, and one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.db import unit_of_work
from tests.factories import make_brand, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url"), pytest.mark.slow]

TRATATIVA = Path(sys.executable).with_name("tratativa")
TUESDAY_AFTERNOON = "2026-12-01T14:30-03:00"
SATURDAY = "2026-12-05T11:00-03:00"


def tratativa(*args: str, group: str = "outreach") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRATATIVA), group, *args],
        env={**os.environ, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def brand_with_cases() -> tuple[str, str, str, str]:
    """A brand with a case ready to notify by e-mail, one without e-mail, one in triage;
    (brand name, their references)."""
    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        brand = await make_brand(session, name=f"Marca Ação {t}")
        with_email = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, emails=(f"vendas.{t}@loja.com.br",)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        without_email = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, phones=(f"+55219{int(t, 16) % 10**8:08d}",)),
            status=CaseStatus.APTO_NOTIFICAR,
        )
        in_triage = await make_case(
            session,
            brand=brand,
            infringer=await make_infringer(session, emails=(f"outra.{t}@loja.com.br",)),
            status=CaseStatus.EM_TRIAGEM,
        )
        return brand.name, with_email.reference, without_email.reference, in_triage.reference


async def status_of(reference: str) -> CaseStatus:
    async with unit_of_work() as session:
        status = await session.scalar(sa.select(Case.status).where(Case.reference == reference))
        assert status is not None
        return status


async def test_dry_run_then_send_by_brand_and_status_with_a_per_case_report() -> None:
    brand, with_email, without_email, in_triage = await brand_with_cases()

    dry = tratativa("send", "--brand", brand, "--status", "APTO_NOTIFICAR", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert any(with_email in line and "seria enviado" in line for line in lines)
    assert any(without_email in line and "no_address" in line for line in lines)
    assert in_triage not in dry.stdout
    assert "simulação: 1 seriam enviados, 1 pulados" in dry.stdout
    assert await status_of(with_email) is CaseStatus.APTO_NOTIFICAR

    sent = tratativa(
        "send", "--brand", brand, "--status", "APTO_NOTIFICAR", "--at", TUESDAY_AFTERNOON
    )
    assert sent.returncode == 0, sent.stderr
    lines = sent.stdout.splitlines()
    assert any(
        with_email in line and "enviado" in line and "@loja.com.br" in line for line in lines
    )
    assert any(without_email in line and "pulado" in line for line in lines)
    assert "enviados 1, pulados 1, falhas 0, na fila 0 (de 2)" in sent.stdout
    assert await status_of(with_email) is CaseStatus.NOTIFICADO
    assert await status_of(without_email) is CaseStatus.APTO_NOTIFICAR


async def test_outside_business_hours_the_batch_waits_and_errors_are_one_line() -> None:
    _brand, with_email, _without, _triage = await brand_with_cases()
    queued = tratativa("send", "--case", with_email, "--at", SATURDAY)
    assert queued.returncode == 0, queued.stderr
    assert "fora do horário comercial" in queued.stderr
    assert "07/12/2026 09:00" in queued.stderr
    assert "na fila 1 (de 1)" in queued.stdout
    assert await status_of(with_email) is CaseStatus.APTO_NOTIFICAR

    unknown = tratativa("send", "--case", "INF-1999-999999", "--dry-run")
    assert unknown.returncode == 1
    assert unknown.stderr.strip().splitlines() == ["erro: Caso INF-1999-999999 não encontrado."]


async def test_operations_run_due_sends_a_notice_queued_over_the_weekend() -> None:
    """`tratativa operations run-due --at` is the cron-minded operator's one pass: it also sends
    what outreach queued outside business hours, once."""
    _brand, with_email, _without, _triage = await brand_with_cases()
    queued = tratativa("send", "--case", with_email, "--at", SATURDAY)
    assert queued.returncode == 0, queued.stderr
    assert await status_of(with_email) is CaseStatus.APTO_NOTIFICAR

    monday = "2026-12-07T09:30-03:00"
    first = tratativa("run-due", "--at", monday, group="operations")
    assert first.returncode == 0, first.stderr
    assert "notificação(ões) da fila de disparos" in first.stdout
    assert await status_of(with_email) is CaseStatus.NOTIFICADO
    again = tratativa("run-due", "--at", monday, group="operations")
    assert again.returncode == 0, again.stderr
    assert "0 notificação(ões) da fila de disparos" in again.stdout
