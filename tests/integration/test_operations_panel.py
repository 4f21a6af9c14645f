"""The notification centre's pages over HTTP: the badge fragment counts only the analyst's
alerts, supervisors see the shared ones, snooze/resolve need the CSRF token, preferences and
quiet hours are saved and validated."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.db import unit_of_work
from api.operations.alerts import AlertSpec, raise_alerts
from api.operations.models import Alert, AlertPreference
from tests.factories import make_case
from tests.integration.test_panel import client, csrf_of, login

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
__all__ = ["client"]


async def seed_alerts(recipient_id: int) -> tuple[int, int]:
    """One alert for `recipient_id` and one for the supervisors: their ids."""
    async with unit_of_work() as session:
        case = await make_case(session)
        mine, shared = await raise_alerts(
            session,
            [
                AlertSpec(
                    kind="follow_up_due",
                    subject=f"case:{case.id}",
                    cycle="painel",
                    title=f"Acompanhamento ({case.reference})",
                    case_id=case.id,
                    recipient_id=recipient_id,
                ),
                AlertSpec(
                    kind="opt_out",
                    subject=f"contact:painel-{case.id}",
                    cycle="e1",
                    title=f"Pedido de descadastro ({case.reference})",
                    case_id=case.id,
                    to_supervisors=True,
                ),
            ],
        )
        return mine.id, shared.id


async def test_the_badge_and_the_centre_show_each_analyst_their_alerts(
    client: httpx.AsyncClient,
) -> None:
    me = await login(client)
    mine, shared = await seed_alerts(me.analyst_id)
    badge = await client.get("/painel/alertas/contador")
    assert 'data-unread="1"' in badge.text
    page = await client.get("/painel/alertas")
    assert f'data-alert-id="{mine}"' in page.text
    assert f'data-alert-id="{shared}"' not in page.text
    refused = await client.post(f"/painel/alertas/{mine}/resolver", data={"csrf_token": "x"})
    assert refused.status_code == 403
    snoozed = await client.post(
        f"/painel/alertas/{mine}/adiar", data={"csrf_token": me.csrf, "minutos": "60"}
    )
    assert snoozed.status_code == 303
    assert "data-unread" not in (await client.get("/painel/alertas/contador")).text
    listed = await client.get("/painel/alertas/lista?aba=adiados")
    assert f'data-alert-id="{mine}"' in listed.text
    bad = await client.post(
        f"/painel/alertas/{mine}/adiar", data={"csrf_token": me.csrf, "minutos": "7"}
    )
    assert bad.status_code == 422
    done = await client.post(f"/painel/alertas/{mine}/resolver", data={"csrf_token": me.csrf})
    assert done.status_code == 303
    async with unit_of_work() as session:
        assert await session.scalar(sa.select(Alert.state).where(Alert.id == mine)) == "resolved"


async def test_supervisors_see_the_shared_alerts(client: httpx.AsyncClient) -> None:
    boss = await login(client, Role.SUPERVISOR)
    _, shared = await seed_alerts(boss.analyst_id)
    page = await client.get("/painel/alertas")
    assert f'data-alert-id="{shared}"' in page.text
    assert "supervisão" in page.text


async def test_preferences_and_quiet_hours(client: httpx.AsyncClient) -> None:
    me = await login(client)
    form = await client.get("/painel/alertas/preferencias")
    token = csrf_of(form.text)
    saved = await client.post(
        "/painel/alertas/preferencias",
        data={
            "csrf_token": token,
            "email": ["infringer_replied", "installment_overdue", "nao_existe"],
            "silencio_inicio": "22:00",
            "silencio_fim": "07:00",
        },
    )
    assert saved.status_code == 303
    async with unit_of_work() as session:
        preference = await session.get(AlertPreference, me.analyst_id)
        assert preference is not None
        assert preference.email_kinds == {"kinds": ["infringer_replied", "installment_overdue"]}
        assert (str(preference.quiet_start), str(preference.quiet_end)) == ("22:00:00", "07:00:00")
    half = await client.post(
        "/painel/alertas/preferencias",
        data={"csrf_token": token, "silencio_inicio": "22:00"},
    )
    assert half.status_code == 422
    page = await client.get("/painel/alertas/preferencias")
    assert 'value="infringer_replied" checked' in page.text
