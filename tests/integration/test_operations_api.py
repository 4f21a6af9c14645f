"""The operations API and the pieces around it: ownership on import (brand default, then
round-robin), reassignment by supervisors only, acknowledge/snooze/resolve with the unread
count, admin-changed defaults and calendar, and e-mail digests through a real SMTP server
(ten alerts in a minute are one e-mail; quiet hours hold it)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.app import create_app
from api.cases.importer import do_import_rows, read_rows
from api.cases.models import Case
from api.channels.email.composer import Firm
from api.channels.email.sender import SmtpEmailSender
from api.config import get_settings
from api.db import unit_of_work
from api.events.models import StoredEvent
from api.operations.alerts import AlertSpec, raise_alerts
from api.operations.calendar import default_calendar
from api.operations.digests import deliver_due_digests, do_build_digests, do_set_preferences
from api.operations.kinds import ALERT_SETTINGS_KEY
from api.operations.mailer import SmtpDigestSender
from api.operations.models import AlertDigest, OperationsSetting
from api.operations.ownership import do_set_brand_default_analyst
from tests.factories import make_analyst, make_brand, make_case, valid_cpf
from tests.integration.email_servers import SmtpServer, smtp_server_fixture

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
__all__ = ["smtp_server_fixture"]
SP = ZoneInfo("America/Sao_Paulo")
_seq = iter(range(60_000_000, 99_999_999, 104759))
HEADER = "brand,seller_name,document,phones,emails,marketplace,listing_urls,amount,case_ref\n"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def login(client: httpx.AsyncClient, role: Role = Role.ANALYST) -> tuple[dict[str, str], int]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        email, analyst_id = analyst.email, analyst.id
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    return {"Authorization": f"Bearer {token.json()['access_token']}"}, analyst_id


def rows(brand: str, count: int) -> str:
    lines = [
        f"{brand},Vendedor {n},{valid_cpf()},+55119{next(_seq):08d},,Shopee,"
        f"https://shopee.com.br/item-{next(_seq)},900,\n"
        for n in range(count)
    ]
    return HEADER + "".join(lines)


async def test_import_assigns_the_brand_default_then_round_robin() -> None:
    async with unit_of_work() as session:
        brand = await make_brand(session)
        other_brand = await make_brand(session)
        supervisor = await make_analyst(session, role=Role.SUPERVISOR)
        default = await make_analyst(session)
        await make_analyst(session)  # at least two analysts take turns
        await do_set_brand_default_analyst(
            session, brand_id=brand.id, analyst_id=default.id, by=supervisor
        )
        brand_name, other_name, default_id = brand.name, other_brand.name, default.id
    async with unit_of_work() as session:
        summary = await do_import_rows(session, read_rows(rows(brand_name, 2).splitlines(True)))
        assert summary.imported == 2
        summary = await do_import_rows(session, read_rows(rows(other_name, 4).splitlines(True)))
        assert summary.imported == 4
    async with unit_of_work() as session:
        by_brand = (
            await session.execute(
                sa.select(Case.brand_id, Case.assignee_id)
                .where(Case.brand_id.in_([brand.id, other_brand.id]))
                .order_by(Case.id)
            )
        ).all()
        events = list(
            await session.scalars(
                sa.select(StoredEvent.payload).where(
                    StoredEvent.kind == "case.assigned",
                    StoredEvent.case_id.in_(
                        sa.select(Case.id).where(Case.brand_id == other_brand.id)
                    ),
                )
            )
        )
    assert [a for b, a in by_brand if b == brand.id] == [default_id, default_id]
    round_robin = [a for b, a in by_brand if b == other_brand.id]
    # Four cases over the active analysts in turn: never the same analyst twice in a row.
    assert None not in round_robin
    assert all(x != y for x, y in itertools.pairwise(round_robin))
    assert {e["how"] for e in events} == {"round_robin"}


async def test_supervisors_reassign_analysts_only_take_unowned_cases(
    client: httpx.AsyncClient,
) -> None:
    analyst, analyst_id = await login(client)
    colleague, colleague_id = await login(client)
    supervisor, _ = await login(client, Role.SUPERVISOR)
    async with unit_of_work() as session:
        case_id = (await make_case(session)).id
    url = f"/api/v1/cases/{case_id}/assignee"
    refused = await client.put(url, json={"analyst_id": colleague_id}, headers=analyst)
    assert refused.status_code == 403
    taken = await client.put(url, json={"analyst_id": analyst_id}, headers=analyst)
    assert taken.json() == {"case_id": case_id, "assignee_id": analyst_id}
    not_theirs = await client.put(url, json={"analyst_id": colleague_id}, headers=colleague)
    assert not_theirs.status_code == 403
    done = await client.put(url, json={"analyst_id": colleague_id}, headers=supervisor)
    assert done.status_code == 200
    assert done.json() == {"case_id": case_id, "assignee_id": colleague_id}
    missing = await client.put(url, json={"analyst_id": 999_999}, headers=supervisor)
    assert missing.status_code == 422
    timeline = await client.get(f"/api/v1/cases/{case_id}/timeline", headers=analyst)
    assert any("Responsável pelo caso" in e["summary"] for e in timeline.json())


async def test_acknowledge_snooze_resolve_and_the_unread_count(client: httpx.AsyncClient) -> None:
    analyst, analyst_id = await login(client)
    stranger, _ = await login(client)
    async with unit_of_work() as session:
        case = await make_case(session)
        case.assignee_id = analyst_id
        created = await raise_alerts(
            session,
            [
                AlertSpec(
                    kind="follow_up_due",
                    subject=f"case:{case.id}",
                    cycle=f"c{n}",
                    title=f"Acompanhamento {n}",
                    case_id=case.id,
                    recipient_id=analyst_id,
                )
                for n in range(3)
            ],
        )
    first, second, third = sorted(a.id for a in created)
    assert (await client.get("/api/v1/alerts/unread", headers=analyst)).json() == {"unread": 3}
    assert (await client.get("/api/v1/alerts/unread", headers=stranger)).json() == {"unread": 0}
    forbidden = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=stranger)
    assert forbidden.status_code == 403
    acked = await client.post(f"/api/v1/alerts/{first}/acknowledge", headers=analyst)
    assert acked.json()["state"] == "acknowledged"
    snoozed = await client.post(
        f"/api/v1/alerts/{second}/snooze", json={"minutes": 60}, headers=analyst
    )
    assert snoozed.json()["state"] == "snoozed"
    bad = await client.post(
        f"/api/v1/alerts/{second}/snooze",
        json={"until": "2020-01-01T10:00:00-03:00"},
        headers=analyst,
    )
    assert bad.status_code == 422
    resolved = await client.post(f"/api/v1/alerts/{third}/resolve", headers=analyst)
    assert resolved.json()["state"] == "resolved"
    page = (await client.get("/api/v1/alerts", headers=analyst)).json()
    assert page["unread"] == 0 and page["items"] == []
    every = (await client.get("/api/v1/alerts?scope=all", headers=analyst)).json()
    assert sorted(i["state"] for i in every["items"]) == ["acknowledged", "resolved", "snoozed"]


async def test_admins_change_defaults_and_the_calendar(client: httpx.AsyncClient) -> None:
    analyst, _ = await login(client)
    admin, _ = await login(client, Role.ADMIN)
    try:
        refused = await client.put(
            "/api/v1/alerts/kinds", json={"email_ignored": {"business_days": 5}}, headers=analyst
        )
        assert refused.status_code == 403
        changed = await client.put(
            "/api/v1/alerts/kinds", json={"email_ignored": {"business_days": 5}}, headers=admin
        )
        assert changed.status_code == 200
        kinds = {k["code"]: k["settings"] for k in changed.json()}
        assert kinds["email_ignored"]["business_days"] == 5
        unknown = await client.put(
            "/api/v1/alerts/kinds", json={"email_ignored": {"dias": 5}}, headers=admin
        )
        assert unknown.status_code == 422
        bad_shift = await client.put(
            "/api/v1/operations/calendar", json={"shifts": "18:00-09:00"}, headers=admin
        )
        assert bad_shift.status_code == 422
        holiday = await client.post(
            "/api/v1/operations/holidays",
            json={"day": "2031-01-25", "name": "Aniversário de São Paulo"},
            headers=admin,
        )
        assert holiday.status_code == 201
        calendar = (await client.get("/api/v1/operations/calendar", headers=analyst)).json()
        assert calendar["extra_holidays"]["2031-01-25"] == "Aniversário de São Paulo"
        gone = await client.delete("/api/v1/operations/holidays/2031-01-25", headers=admin)
        assert gone.status_code == 204
    finally:
        async with unit_of_work() as session:
            await session.execute(
                sa.delete(OperationsSetting).where(OperationsSetting.key == ALERT_SETTINGS_KEY)
            )


async def clear_digest_backlog() -> None:
    """The session database is shared: alerts other tests raised for analysts who chose
    e-mail (the API fuzz test's supervisor among them) would be digested with this test's."""
    import sqlalchemy as sa

    from api.operations.models import AlertDigest, AlertEmail

    async with unit_of_work() as session:
        await session.execute(sa.delete(AlertEmail))
        await session.execute(sa.delete(AlertDigest).where(AlertDigest.state == "pending"))


async def test_ten_alerts_in_a_minute_are_one_digest_email(smtp_server: SmtpServer) -> None:
    await clear_digest_backlog()
    t0 = dt.datetime(2027, 3, 3, 14, 0, tzinfo=SP)  # a Wednesday afternoon
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        quiet = await make_analyst(session)
        case = await make_case(session)
        for who in (analyst, quiet):
            await do_set_preferences(
                session,
                analyst_id=who.id,
                email_kinds=["infringer_replied"],
                quiet_start=dt.time(13, 0) if who is quiet else None,
                quiet_end=dt.time(15, 0) if who is quiet else None,
            )
        for n in range(10):
            for who in (analyst, quiet):
                await raise_alerts(
                    session,
                    [
                        AlertSpec(
                            kind="infringer_replied",
                            subject=f"conv:test-{who.id}-{n}",
                            cycle="m1",
                            title=f"Infrator respondeu ({n})",
                            case_id=case.id,
                            recipient_id=who.id,
                        )
                    ],
                    now=t0 + dt.timedelta(seconds=5 * n),
                )
        ignored_kind = await raise_alerts(
            session,
            [
                AlertSpec(
                    kind="follow_up_due",
                    subject=f"case:{case.id}",
                    cycle="digest-test",
                    title="Não pedido por e-mail",
                    case_id=case.id,
                    recipient_id=analyst.id,
                )
            ],
            now=t0,
        )
        assert len(ignored_kind) == 1
        analyst_email, quiet_email = analyst.email, quiet.email
    calendar = default_calendar()
    async with unit_of_work() as session:
        assert (
            await do_build_digests(session, now=t0 + dt.timedelta(seconds=50), calendar=calendar)
            == 0
        )
    async with unit_of_work() as session:
        assert (
            await do_build_digests(session, now=t0 + dt.timedelta(seconds=61), calendar=calendar)
            == 1
        )
        assert (
            await do_build_digests(session, now=t0 + dt.timedelta(seconds=62), calendar=calendar)
            == 0
        )
    settings = get_settings()
    smtp = SmtpEmailSender(
        host=smtp_server.host,
        port=smtp_server.port,
        firm=Firm.from_settings(settings),
        secret="test-secret",
        starttls=False,
    )
    sender = SmtpDigestSender(smtp)
    assert await deliver_due_digests(sender, now=t0 + dt.timedelta(seconds=70)) >= 1
    assert await deliver_due_digests(sender, now=t0 + dt.timedelta(seconds=80)) == 0
    mine = [m for m in smtp_server.sink.messages if analyst_email in str(m["To"])]
    assert len(mine) == 1
    assert mine[0]["Subject"] == "Tratativa: 10 novos alertas"
    body = mine[0].get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert text.count("[Infrator respondeu]") == 10 and "Não pedido" not in text
    assert "/painel/alertas" in text
    # Quiet hours (13:00-15:00): nothing until they end, then one digest.
    assert not [m for m in smtp_server.sink.messages if quiet_email in str(m["To"])]
    async with unit_of_work() as session:
        assert (
            await do_build_digests(session, now=t0 + dt.timedelta(minutes=59), calendar=calendar)
            == 0
        )
        assert (
            await do_build_digests(session, now=t0 + dt.timedelta(minutes=60), calendar=calendar)
            == 1
        )
    await deliver_due_digests(sender, now=t0 + dt.timedelta(minutes=61))
    [held] = [m for m in smtp_server.sink.messages if quiet_email in str(m["To"])]
    assert held["Subject"] == "Tratativa: 10 novos alertas"
    async with unit_of_work() as session:
        states = set(
            await session.scalars(
                sa.select(AlertDigest.state).where(
                    AlertDigest.to_address.in_([analyst_email, quiet_email])
                )
            )
        )
    assert states == {"done"}


async def test_a_refused_digest_is_retried_then_sent(smtp_server: SmtpServer) -> None:
    await clear_digest_backlog()
    t0 = dt.datetime(2027, 3, 4, 10, 0, tzinfo=SP)
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        case = await make_case(session)
        await do_set_preferences(
            session,
            analyst_id=analyst.id,
            email_kinds=["opt_out"],
            quiet_start=None,
            quiet_end=None,
        )
        await raise_alerts(
            session,
            [
                AlertSpec(
                    kind="opt_out",
                    subject=f"contact:test-{analyst.id}",
                    cycle="e1",
                    title="Pedido de descadastro",
                    case_id=case.id,
                    recipient_id=analyst.id,
                )
            ],
            now=t0,
        )
        await do_build_digests(
            session, now=t0 + dt.timedelta(minutes=2), calendar=default_calendar()
        )
        email = analyst.email
    smtp_server.sink.script.append("451 4.3.0 tente mais tarde")
    sender = SmtpDigestSender(
        SmtpEmailSender(
            host=smtp_server.host,
            port=smtp_server.port,
            firm=Firm.from_settings(get_settings()),
            secret="test-secret",
            starttls=False,
        )
    )
    await deliver_due_digests(sender, now=t0 + dt.timedelta(minutes=3))
    assert not [m for m in smtp_server.sink.messages if email in str(m["To"])]
    await deliver_due_digests(sender, now=t0 + dt.timedelta(minutes=10))
    assert len([m for m in smtp_server.sink.messages if email in str(m["To"])]) == 1
