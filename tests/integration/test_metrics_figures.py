"""Every figure of the metrics equals the value computed by hand from the fixture
(tests/helpers/metrics_fixture.py), on PostgreSQL and on SQLite, whether the rollups were
maintained by the durable consumer or rebuilt from scratch.

Hand computations (seconds; business time = Mon-Fri 09:00-18:00 São Paulo, 12 Oct a holiday):
  C2 queue: Fri 2 17:31 → Mon 5 09:30 = 63h59m = 230340 wall; 29 min + 30 min = 3540 business.
  C2 human first: Fri 17:31 → Mon 10:00 = 232140; 29 min + 1 h = 5340.
  C4 queue: Sun 11 20:00 → Tue 13 09:15 = 134100; Monday is a holiday → 15 min = 900.
  C4 human first: Sun 20:00 → Tue 11:00 = 140400; 2 h = 7200.
  C4 bot first: Sat 10 11:00 → 11:05 = 300 wall, 0 business (weekend).
  C11 queue: Fri 16 17:50 → Mon 19 09:10 = 228000; 10 + 10 min = 1200.
  C1 notice → payment: Thu 1 10:00 → Mon 5 10:00 = 345600; 8 h + 9 h + 1 h = 64800.
  C5 notice → agreement: Tue 6 10:00 → Wed 7 14:03 = 100980; 8 h + 5h03 = 46980.
  C5 notice → payment: Tue 6 10:00 → Tue 20 10:00 = 1209600; 81 h (holiday skipped) = 291600.
  C6 notice → payment: Mon 5 14:00 → Tue 6 12:00 = 79200; 4 h + 3 h = 25200.
  C2 notice → agreement: Fri 2 17:00 → Mon 5 10:45 = 236700; 1 h + 1h45 = 9900.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.db import make_engine
from api.events.consumers import drain
from api.metrics.consumer import METRICS_ROLLUPS
from api.metrics.rebuild import do_rebuild
from api.metrics.schemas import ChannelRow, MetricsReport, Stat, Timing
from api.metrics.service import get_metrics, percentile
from api.migrate import upgrade
from tests.conftest import _default_url, create_scratch_database, drop_scratch_database
from tests.helpers.metrics_fixture import Fixture, seed_metrics_fixture

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def metrics_url(database_url: str) -> Iterator[str]:
    """A database of its own: the figures count everything, so no other test's events."""
    url = create_scratch_database(os.environ.get("TEST_DATABASE_URL", _default_url()))
    upgrade(url)
    yield url
    drop_scratch_database(url)


@pytest.fixture(scope="module")
async def metrics_engine(metrics_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(metrics_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="module")
async def fixture_data(metrics_engine: AsyncEngine) -> Fixture:
    maker = async_sessionmaker(metrics_engine, expire_on_commit=False)
    async with maker() as session:
        fx = await seed_metrics_fixture(session)
        await session.commit()
    handled = await drain(METRICS_ROLLUPS, maker=maker)
    assert handled >= 150
    return fx


async def report(engine: AsyncEngine, **filters: Any) -> MetricsReport:
    async with AsyncSession(engine) as session:
        return await get_metrics(session, **filters)


def channel(rep: MetricsReport, name: str) -> ChannelRow:
    (row,) = [r for r in rep.channels if r.channel == name]
    return row


def timing(
    wall: list[float], business: list[float]
) -> Timing:  # the expected distribution of hand-computed values
    def stat(values: list[float]) -> Stat:
        return Stat(
            n=len(values),
            median=percentile(values, 0.5),
            p90=percentile(values, 0.9),
            mean=sum(values) / len(values) if values else None,
        )

    return Timing(wall=stat(wall), business=stat(business))


def same(actual: Timing, expected: Timing) -> None:
    for scale in ("wall", "business"):
        got, want = getattr(actual, scale), getattr(expected, scale)
        assert got.n == want.n, scale
        for field in ("median", "p90", "mean"):
            value, target = getattr(got, field), getattr(want, field)
            if target is None:
                assert value is None
            else:
                assert value == pytest.approx(target, abs=1e-6), (scale, field)


def test_percentile_interpolates_like_percentile_cont() -> None:
    assert percentile([30, 30, 60, 60, 60, 60], 0.5) == 60
    assert percentile([20, 60, 120, 300], 0.5) == 90
    assert percentile([20, 60, 120, 300], 0.9) == pytest.approx(246)
    assert percentile([1800, 232140], 0.9) == pytest.approx(209106)
    assert percentile([], 0.5) is None


async def test_whatsapp_figures(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    wa = channel(await report(metrics_engine, period="2026-10"), "whatsapp")
    assert (wa.conversations, wa.conversations_contacted, wa.conversations_answered) == (7, 7, 6)
    assert wa.response_rate == pytest.approx(6 / 7)
    assert (wa.cases_contacted, wa.cases_answered) == (7, 6)
    assert (wa.messages_sent, wa.messages_delivered, wa.messages_read) == (17, 14, 5)
    assert wa.delivery_rate == pytest.approx(14 / 17)
    assert wa.read_rate == pytest.approx(5 / 14)
    assert wa.messages_failed == 1
    assert wa.messages_received == 9
    assert (wa.handoff_events, wa.handoff_cases) == (2, 2)
    # C2 and C7 asked for a person, Bruno took C10 straight from the bot.
    assert wa.conversations_handed_off == 3
    assert wa.handoff_rate == pytest.approx(3 / 6)
    assert (wa.opt_out_events, wa.conversations_opted_out) == (1, 1)
    assert wa.opt_out_rate == pytest.approx(1 / 7)
    assert wa.cases_engaged == 6
    assert (wa.agreement_cases, wa.payment_cases, wa.removal_cases) == (5, 3, 1)
    assert wa.agreement_rate == pytest.approx(5 / 7)
    assert wa.payment_rate == pytest.approx(3 / 7)
    assert wa.removal_rate == pytest.approx(1 / 7)
    assert wa.conversion_agreement == pytest.approx(5 / 6)
    assert wa.conversion_payment == pytest.approx(3 / 6)
    # Last touch: C1, C2, C6, C10 (C5's last message before agreeing was an e-mail).
    assert (wa.attributed_agreements, wa.attributed_payments) == (4, 2)
    assert wa.bot_only_agreements == 2
    assert wa.bot_only_share == pytest.approx(0.5)
    same(wa.bot_first_response, timing([60, 60, 30, 60, 30, 60], [60, 60, 30, 60, 30, 60]))
    same(wa.bot_next_response, timing([120], [120]))
    same(wa.human_first_response, timing([232140, 1800], [5340, 1800]))
    same(wa.human_next_response, timing([1800], [1800]))
    same(wa.queue_wait, timing([230340], [3540]))
    same(
        wa.notice_to_agreement,
        timing([3780, 236700, 2400, 7200], [3780, 9900, 2400, 7200]),
    )
    same(wa.notice_to_payment, timing([345600, 79200], [64800, 25200]))


async def test_email_figures(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    em = channel(await report(metrics_engine, period="2026-10"), "email")
    assert (em.conversations, em.conversations_contacted, em.conversations_answered) == (6, 6, 4)
    assert em.response_rate == pytest.approx(4 / 6)
    # Delivered = accepted by the server and not bounced: C3's notice bounced, 1202 was
    # never accepted.
    assert (em.messages_sent, em.messages_delivered, em.messages_failed) == (12, 10, 1)
    assert em.delivery_rate == pytest.approx(10 / 12)
    assert em.messages_read is None and em.read_rate is None
    assert em.messages_received == 6  # the bounce is not the infringer answering
    assert (em.handoff_events, em.conversations_handed_off) == (2, 2)
    assert em.handoff_rate == pytest.approx(2 / 4)
    assert em.opt_out_rate == 0
    assert (em.agreement_cases, em.payment_cases, em.removal_cases) == (2, 1, 1)
    assert em.agreement_rate == pytest.approx(2 / 6)
    assert em.conversion_agreement == pytest.approx(2 / 4)
    assert em.conversion_payment == pytest.approx(1 / 4)
    assert (em.attributed_agreements, em.attributed_payments, em.bot_only_agreements) == (2, 1, 2)
    assert em.bot_only_share == 1
    same(em.bot_first_response, timing([300, 120, 20, 60], [0, 120, 20, 60]))
    same(em.bot_next_response, timing([60], [0]))
    same(em.human_first_response, timing([140400], [7200]))
    same(em.queue_wait, timing([134100, 228000], [900, 1200]))
    same(em.notice_to_agreement, timing([100980, 7320], [46980, 7320]))
    same(em.notice_to_payment, timing([1209600], [291600]))


async def test_analyst_figures(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    rep = await report(metrics_engine, period="2026-10")
    by_id = {r.analyst_id: r for r in rep.analysts}
    ana, bruno = by_id[fixture_data.ana], by_id[fixture_data.bruno]
    assert (ana.handoffs_taken, ana.handoff_cases, ana.messages_sent) == (2, 2, 2)
    same(ana.queue_wait, timing([230340, 228000], [3540, 1200]))
    same(ana.first_response, timing([232140], [5340]))
    same(ana.next_response, timing([1800], [1800]))
    assert ana.sla_breaches == 1  # handoff_first_response; "infringer_replied" is no breach
    assert (ana.agreements, ana.agreed_amount, ana.reference_amount) == (
        1,
        Decimal("1500.00"),
        Decimal("2000.00"),
    )
    assert ana.discount_amount == Decimal("500.00")
    assert ana.discount_rate == pytest.approx(0.25)
    assert (bruno.handoffs_taken, bruno.messages_sent, bruno.sla_breaches) == (2, 2, 0)
    same(bruno.queue_wait, timing([134100], [900]))
    same(bruno.first_response, timing([140400, 1800], [7200, 1800]))
    same(bruno.next_response, timing([], []))
    assert (bruno.agreements, bruno.agreed_amount, bruno.discount_amount) == (
        1,
        Decimal("800.00"),
        Decimal("200.00"),
    )
    assert bruno.discount_rate == pytest.approx(0.2)


async def test_brand_funnel_and_amounts(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    rep = await report(metrics_engine, period="2026-10")
    by_id = {r.brand_id: r for r in rep.brands}
    a, b = by_id[fixture_data.brand_a], by_id[fixture_data.brand_b]
    assert (a.cases, a.notified, a.engaged, a.agreement, a.paid, a.closed, a.reopened) == (
        7, 7, 4, 3, 2, 1, 1,
    )  # fmt: skip
    assert (a.bot_only_agreements, a.agreed_amount, a.received_amount) == (
        2,
        Decimal("5100.00"),
        Decimal("3600.00"),
    )
    assert (b.cases, b.notified, b.engaged, b.agreement, b.paid, b.closed, b.reopened) == (
        5, 5, 5, 3, 1, 0, 0,
    )  # fmt: skip
    assert (b.agreed_amount, b.received_amount) == (Decimal("2700.00"), Decimal("1000.00"))
    statuses = {(r.brand_id, r.status): r.cases for r in rep.statuses}
    assert statuses == {
        (a.brand_id, "PAGO"): 1,
        (a.brand_id, "ACORDO_PROPOSTO"): 1,
        (a.brand_id, "NOTIFICADO"): 3,
        (a.brand_id, "REABERTO"): 1,
        (a.brand_id, "EM_ATENDIMENTO"): 1,
        (b.brand_id, "EM_CONTESTACAO"): 1,
        (b.brand_id, "PAGO"): 1,
        (b.brand_id, "EM_ATENDIMENTO"): 1,
        (b.brand_id, "ACORDO_ASSINADO"): 1,
        (b.brand_id, "ACORDO_PROPOSTO"): 1,
    }


async def test_events_and_distinct_cases(
    metrics_engine: AsyncEngine, fixture_data: Fixture
) -> None:
    rep = await report(metrics_engine, period="2026-10")
    counts = {r.kind: (r.events, r.cases, r.amount) for r in rep.events}
    assert counts["message.received"][:2] == (16, 10)
    assert counts["message.sent"][:2] == (29, 12)
    assert counts["handoff.requested"][:2] == (4, 4)
    assert counts["handoff.claimed"][:2] == (4, 4)
    assert counts["agreement.proposed"] == (5, 5, Decimal("7000.00"))
    assert counts["agreement.accepted"] == (4, 4, Decimal("5400.00"))
    assert counts["payment.confirmed"] == (3, 3, Decimal("4600.00"))
    assert counts["contact.opted_out"][:2] == (1, 1)
    assert counts["alert.raised"][:2] == (2, 1)
    reasons = {(r.channel, r.reason): (r.events, r.cases) for r in rep.handoff_reasons}
    assert reasons == {
        ("whatsapp", "pedido do infrator"): (1, 1),
        ("whatsapp", "opt-out: revisar contato"): (1, 1),
        ("email", "infrator informou advogado/jurídico"): (1, 1),
        ("email", "contestação"): (1, 1),
    }


async def test_weekly_trend(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    rep = await report(metrics_engine, period="2026-10")
    weeks = {str(w.week): (w.cases, w.engaged, w.agreement, w.paid) for w in rep.weeks}
    assert weeks == {
        "2026-09-28": (2, 2, 2, 1),
        "2026-10-05": (7, 4, 2, 2),
        "2026-10-12": (2, 2, 1, 0),
        "2026-10-19": (1, 1, 1, 0),
    }
    week = {str(w.week): w for w in rep.weeks}["2026-10-05"]
    # Bot first responses that began that week: C5 (30 WhatsApp), C6 (60), C7 (30), C4 (300
    # on Saturday, 0 in business time), C5 e-mail (120).
    same(week.bot_first_response, timing([30, 60, 30, 300, 120], [30, 60, 30, 0, 120]))


async def test_filters(metrics_engine: AsyncEngine, fixture_data: Fixture) -> None:
    beta = await report(metrics_engine, period="2026-10", brand_id=fixture_data.brand_b)
    assert [b.brand_id for b in beta.brands] == [fixture_data.brand_b]
    assert {r.channel: r.conversations for r in beta.channels} == {"email": 3, "whatsapp": 3}
    only_email = await report(metrics_engine, period="2026-10", channel="email")
    assert [r.channel for r in only_email.channels] == ["email"]
    assert {b.brand_id: b.cases for b in only_email.brands} == {
        fixture_data.brand_a: 3,  # C3, C9, C11
        fixture_data.brand_b: 3,  # C4, C5, C12
    }
    bruno = await report(metrics_engine, period="2026-10", analyst_id=fixture_data.bruno)
    assert [a.analyst_id for a in bruno.analysts] == [fixture_data.bruno]
    november = await report(metrics_engine, period="2026-11")
    assert [(b.brand_id, b.cases) for b in november.brands] == [(fixture_data.brand_a, 1)]
    days = await report(metrics_engine, date_from=fixture_data_day(5), date_to=fixture_data_day(9))
    # Cases notified Mon 5 – Fri 9 October: C3, C4, C5, C6, C7, C8, C9.
    assert sum(b.cases for b in days.brands) == 7


def fixture_data_day(day: int) -> Any:
    import datetime as dt

    return dt.date(2026, 10, day)


async def test_rebuild_gives_the_same_figures(
    metrics_engine: AsyncEngine, fixture_data: Fixture
) -> None:
    before = await report(metrics_engine, period="2026-10")
    maker = async_sessionmaker(metrics_engine, expire_on_commit=False)
    async with maker() as session:
        result = await do_rebuild(session)
        await session.commit()
    assert result.rows["metric_cases"] == 13
    after = await report(metrics_engine, period="2026-10")
    assert after == before
    # The cursor is past every event: the consumer finds nothing left to fold.
    assert await drain(METRICS_ROLLUPS, maker=maker) == 0


def tratativa(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("tratativa")), *args],
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "250"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_report_prints_and_writes_csv(
    metrics_url: str, fixture_data: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "outubro.csv"
    result = tratativa(
        "report", "--period", "2026-10", "--brand", "marca beta", "--csv", str(out),
        database_url=metrics_url,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Por marca (funil)" in result.stdout and "Marca Beta" in result.stdout
    rows = {(r["table"], r["row"], r["metric"]): r["value"] for r in csv.DictReader(out.open())}
    assert rows[("brands", "Marca Beta", "cases")] == "5"
    assert rows[("brands", "Marca Beta", "agreed_amount")] == "2700.00"
    assert rows[("channels", "email", "queue_wait.business.median")] == "900.0"  # C4 only


def test_cli_report_errors_and_rebuild(metrics_url: str, fixture_data: Fixture) -> None:
    missing = tratativa("report", "--brand", "Nenhuma", database_url=metrics_url)
    assert missing.returncode == 1
    assert [line for line in missing.stderr.splitlines() if line.strip()] == [
        "erro: Marca não encontrada: 'Nenhuma'."
    ]
    rebuilt = tratativa("report", "rebuild", database_url=metrics_url)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rollups refeitos" in rebuilt.stdout and "metric_cases=13" in rebuilt.stdout
