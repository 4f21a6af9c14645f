"""Panel: the notification centre (/painel/alertas) — the analyst's alerts, live (the list and
the header's unread count refetch when the live stream says an alert was raised or changed),
with acknowledge / snooze / resolve, and each analyst's e-mail preferences and quiet hours.

Reads and changes go through api/operations (alerts.py, digests.py); no SQL here."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst
from api.db import utcnow
from api.errors import ValidationFailed
from api.operations.alerts import (
    count_active,
    do_acknowledge,
    do_resolve,
    do_snooze,
    get_alerts,
)
from api.operations.digests import do_set_preferences, get_preferences
from api.operations.kinds import ALERT_KINDS, kind_label
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Alertas", "/alertas", None, 5))

# Tab (URL value) → (scope of get_alerts, label).
TABS: dict[str, tuple[str, str]] = {
    "ativos": ("active", "Não vistos"),
    "adiados": ("snoozed", "Adiados"),
    "vistos": ("acknowledged", "Vistos"),
    "resolvidos": ("resolved", "Resolvidos"),
    "todos": ("all", "Todos"),
}
SNOOZE_CHOICES = {"60": "1 hora", "240": "4 horas", "1440": "1 dia"}
SEVERITY_LABELS = {"info": "informativo", "warning": "atenção", "critical": "urgente"}
STATE_LABELS = {
    "open": "não visto",
    "acknowledged": "visto",
    "snoozed": "adiado",
    "resolved": "resolvido",
}


async def _list_context(session: DbSession, analyst: Analyst, aba: str) -> dict[str, object]:
    if aba not in TABS:
        raise ValidationFailed(f"Aba desconhecida: {aba!r}.")
    now = utcnow()
    return {
        "tab": aba,
        "tabs": TABS,
        "alerts": await get_alerts(session, analyst=analyst, now=now, scope=TABS[aba][0]),
        "unread": await count_active(session, analyst=analyst, now=now),
        "kind_label": kind_label,
        "severity_labels": SEVERITY_LABELS,
        "state_labels": STATE_LABELS,
        "snooze_choices": SNOOZE_CHOICES,
    }


@router.get("/alertas")
async def alerts_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, aba: str = "ativos"
) -> HTMLResponse:
    context = await _list_context(session, analyst, aba)
    return render_page(request, "alertas.html", context, analyst=analyst)


@router.get("/alertas/lista")
async def alerts_rows(
    request: Request, session: DbSession, analyst: PanelAnalyst, aba: str = "ativos"
) -> HTMLResponse:
    context = await _list_context(session, analyst, aba)
    return render_page(request, "_alertas_lista.html", context, analyst=analyst)


@router.get("/alertas/contador")
async def alerts_counter(
    request: Request, session: DbSession, analyst: PanelAnalyst
) -> HTMLResponse:
    """The header's badge: the unread count (refetched live)."""
    unread = await count_active(session, analyst=analyst, now=utcnow())
    return render_page(request, "_alertas_contador.html", {"unread": unread}, analyst=analyst)


def _back(aba: str) -> Response:
    return redirect(f"{PANEL_PREFIX}/alertas?aba={aba if aba in TABS else 'ativos'}")


@router.post("/alertas/{alert_id}/visto")
async def acknowledge(
    session: DbSession,
    analyst: PanelWriter,
    alert_id: PathId,
    aba: Annotated[str, Form(max_length=20)] = "ativos",
) -> Response:
    await do_acknowledge(session, alert_id=alert_id, analyst=analyst)
    return _back(aba)


@router.post("/alertas/{alert_id}/adiar")
async def snooze(
    session: DbSession,
    analyst: PanelWriter,
    alert_id: PathId,
    minutos: Annotated[str, Form(max_length=6)],
    aba: Annotated[str, Form(max_length=20)] = "ativos",
) -> Response:
    if minutos not in SNOOZE_CHOICES:
        raise ValidationFailed("Escolha por quanto tempo adiar.")
    now = utcnow()
    until = now + dt.timedelta(minutes=int(minutos))
    await do_snooze(session, alert_id=alert_id, analyst=analyst, until=until, now=now)
    return _back(aba)


@router.post("/alertas/{alert_id}/resolver")
async def resolve(
    session: DbSession,
    analyst: PanelWriter,
    alert_id: PathId,
    aba: Annotated[str, Form(max_length=20)] = "ativos",
) -> Response:
    await do_resolve(session, alert_id=alert_id, analyst=analyst)
    return _back(aba)


@router.get("/alertas/preferencias")
async def preferences_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, salvo: str | None = None
) -> HTMLResponse:
    preference = await get_preferences(session, analyst_id=analyst.id)
    chosen = set((preference.email_kinds or {}).get("kinds") or []) if preference else set()
    return render_page(
        request,
        "alertas_preferencias.html",
        {
            "kinds": list(ALERT_KINDS.values()),
            "chosen": chosen,
            "quiet_start": preference.quiet_start if preference else None,
            "quiet_end": preference.quiet_end if preference else None,
            "saved": salvo == "1",
        },
        analyst=analyst,
    )


def _time(value: str, label: str) -> dt.time | None:
    if not value.strip():
        return None
    try:
        return dt.time.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(f"{label} inválido: {value!r} (use HH:MM).") from exc


@router.post("/alertas/preferencias")
async def save_preferences(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    silencio_inicio: Annotated[str, Form(max_length=8)] = "",
    silencio_fim: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    form = await request.form()
    kinds = [str(v) for v in form.getlist("email") if str(v) in ALERT_KINDS]
    await do_set_preferences(
        session,
        analyst_id=analyst.id,
        email_kinds=kinds,
        quiet_start=_time(silencio_inicio, "Início do silêncio"),
        quiet_end=_time(silencio_fim, "Fim do silêncio"),
    )
    return redirect(f"{PANEL_PREFIX}/alertas/preferencias?salvo=1")
