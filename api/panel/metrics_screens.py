"""Panel: the supervisors' dashboard (/painel/metricas) — the funnel, conversion and response
times by channel, times by analyst, weekly trend, as server-rendered SVG charts (no script, no
CDN), each with its numbers one click away (<details>) and a CSV of the same query.

The figures come from `get_metrics` (api/metrics/service.py), as the API and the CLI."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst, Role
from api.db import utcnow
from api.errors import PermissionDenied, ValidationFailed
from api.ids import MAX_ID
from api.metrics.definitions import DEFINITIONS
from api.metrics.export import ROW_MODELS, columns_of, table_rows, to_csv
from api.metrics.schemas import MetricsReport, Timing
from api.metrics.service import TABLES, get_filter_options, get_metrics
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst
from api.panel.formatting import render_page
from api.panel.nav import NavItem, add_nav
from api.web.security import apply_security_headers

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Métricas", "/metricas", frozenset({Role.SUPERVISOR, Role.ADMIN}), 60))

CHANNEL_NAMES = {"whatsapp": "WhatsApp", "email": "E-mail"}
# Chart geometry (SVG user units).
WIDTH = 720
LABEL_W = 190
BAR_AREA = 400
ROW_H = 26
BAR_H = 18


def pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 100:.1f}%".replace(".", ",")


def duration(seconds: float | None) -> str:
    """Brazilian short form: 2d 4h, 1h 05min, 12min, 40s."""
    if seconds is None:
        return "—"
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}min"
    if minutes:
        return f"{minutes}min"
    return f"{secs}s"


def channel_name(value: str) -> str:
    return CHANNEL_NAMES.get(value, value)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    text: str
    series: str = "s1"


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart laid out for the template."""

    key: str
    title: str
    note: str
    height: int
    rows: list[dict[str, Any]]
    legend: list[tuple[str, str]]


def bar_chart(
    key: str,
    title: str,
    bars: Sequence[Bar],
    *,
    log: bool = False,
    note: str = "",
    legend: Sequence[tuple[str, str]] = (),
) -> Chart:
    """Bars scaled to the largest value (or its log, for times spanning seconds to days)."""

    def scaled(value: float) -> float:
        return math.log10(1 + value) if log else value

    top = max((scaled(b.value) for b in bars if b.value), default=0.0)
    rows = []
    for index, bar in enumerate(bars):
        width = 0.0 if not bar.value or not top else BAR_AREA * scaled(bar.value) / top
        y = 8 + index * ROW_H
        rows.append(
            {
                "label": bar.label,
                "text": bar.text,
                "series": bar.series,
                "y": y,
                "text_y": y + BAR_H - 4,
                "width": round(max(width, 1.0 if bar.value else 0.0), 1),
                "text_x": LABEL_W + round(width, 1) + 6,
            }
        )
    return Chart(
        key=key,
        title=title,
        note=note,
        height=16 + len(bars) * ROW_H,
        rows=rows,
        legend=list(legend),
    )


@dataclass(frozen=True)
class Columns:
    """A weekly column chart: two series side by side per week."""

    key: str
    title: str
    width: int
    height: int
    columns: list[dict[str, Any]]
    legend: list[tuple[str, str]]


def week_chart(report: MetricsReport) -> Columns:
    weeks = report.weeks[-26:]
    top = max((max(w.cases, w.agreement) for w in weeks), default=0) or 1
    plot_h, slot, bar_w = 160, 56, 18
    columns = []
    for index, week in enumerate(weeks):
        x = 40 + index * slot
        for offset, (value, series) in enumerate(((week.cases, "s1"), (week.agreement, "s2"))):
            height = plot_h * value / top
            columns.append(
                {
                    "x": x + offset * (bar_w + 2),
                    "width": bar_w,
                    "y": 10 + plot_h - height,
                    "height": round(height, 1),
                    "series": series,
                    "value": value,
                    "title": f"{week.week:%d/%m}: {value}",
                }
            )
        columns.append({"label": f"{week.week:%d/%m}", "label_x": x + bar_w, "series": "rotulo"})
    return Columns(
        key="semanas",
        title="Tendência semanal (coorte por semana da notificação)",
        width=max(WIDTH, 60 + len(weeks) * slot),
        height=plot_h + 40,
        columns=columns,
        legend=[("s1", "Casos notificados"), ("s2", "Com acordo")],
    )


def charts(report: MetricsReport) -> list[Chart]:
    brands = report.brands
    funnel = [
        ("Casos (coorte)", sum(b.cases for b in brands)),
        ("Notificado", sum(b.notified for b in brands)),
        ("Em atendimento", sum(b.engaged for b in brands)),
        ("Acordo", sum(b.agreement for b in brands)),
        ("Pago", sum(b.paid for b in brands)),
        ("Encerrado", sum(b.closed for b in brands)),
    ]
    conversion: list[Bar] = []
    for row in report.channels:
        name = channel_name(row.channel)
        conversion += [
            Bar(f"{name} · resposta", row.response_rate, pct(row.response_rate), "s1"),
            Bar(f"{name} · acordo", row.conversion_agreement, pct(row.conversion_agreement), "s2"),
            Bar(f"{name} · pagamento", row.conversion_payment, pct(row.conversion_payment), "s3"),
        ]
    times: list[Bar] = []
    for row in report.channels:
        name = channel_name(row.channel)
        for label, timing, series in (
            ("1ª resp. bot", row.bot_first_response, "s1"),
            ("1ª resp. humana", row.human_first_response, "s2"),
        ):
            times += [
                Bar(f"{name} · {label}", timing.wall.median, duration(timing.wall.median), series),
                Bar(
                    f"{name} · {label} (útil)",
                    timing.business.median,
                    duration(timing.business.median),
                    series + " util",
                ),
            ]
    analysts: list[Bar] = []
    for analyst in report.analysts:
        analysts += [
            Bar(
                f"{analyst.name} · 1ª resposta",
                analyst.first_response.wall.median,
                duration(analyst.first_response.wall.median),
                "s2",
            ),
            Bar(
                f"{analyst.name} · fila",
                analyst.queue_wait.wall.median,
                duration(analyst.queue_wait.wall.median),
                "s3",
            ),
        ]
    return [
        bar_chart(
            "funil",
            "Funil: NOTIFICADO → EM ATENDIMENTO → ACORDO → PAGO → ENCERRADO",
            [Bar(label, value, str(value)) for label, value in funnel],
        ),
        bar_chart(
            "conversao",
            "Conversão por canal",
            conversion,
            note="Resposta: conversas respondidas / conversas em que escrevemos. Acordo e "
            "pagamento: casos em que o infrator escreveu no canal.",
            legend=[("s1", "Resposta"), ("s2", "Acordo"), ("s3", "Pagamento")],
        ),
        bar_chart(
            "tempos-canal",
            "Tempos de resposta por canal (mediana)",
            times,
            log=True,
            note="Escala logarítmica. A 1ª resposta humana conta a partir do transbordo; "
            "'útil' = em horário comercial.",
            legend=[("s1", "Bot"), ("s2", "Humana")],
        ),
        bar_chart(
            "tempos-analista",
            "Tempos por analista (mediana)",
            analysts,
            log=True,
            note="Escala logarítmica.",
            legend=[("s2", "1ª resposta"), ("s3", "Espera na fila")],
        ),
    ]


def _optional_id(value: str | None, what: str) -> int | None:
    if value in (None, ""):
        return None
    try:
        number = int(str(value))
    except ValueError as exc:
        raise ValidationFailed(f"{what} inválido: {value!r}.") from exc
    if not 1 <= number <= MAX_ID:
        raise ValidationFailed(f"{what} inválido: {value!r}.")
    return number


def _channel(value: str | None) -> str | None:
    if value in (None, ""):
        return None
    if value not in CHANNEL_NAMES:
        raise ValidationFailed(f"Canal inválido: {value!r}.")
    return value


def _check_supervisor(analyst: Analyst) -> None:
    if not analyst.has_role(Role.SUPERVISOR):
        raise PermissionDenied("As métricas são para supervisores.")


def _default_period(tz_now: dt.datetime) -> str:
    return f"{tz_now:%Y-%m}"


async def _load(
    session: DbSession,
    *,
    periodo: str | None,
    marca: str | None,
    canal: str | None,
    analista: str | None,
    tables: Sequence[str] | None = None,
) -> tuple[MetricsReport, dict[str, Any]]:
    from zoneinfo import ZoneInfo

    from api.config import get_settings

    period = (periodo or "").strip() or _default_period(
        utcnow().astimezone(ZoneInfo(get_settings().business_timezone))
    )
    brand_id = _optional_id(marca, "Marca")
    channel = _channel(canal)
    analyst_id = _optional_id(analista, "Analista")
    report = await get_metrics(
        session,
        period=period,
        brand_id=brand_id,
        channel=channel,
        analyst_id=analyst_id,
        tables=tables or TABLES,
    )
    query = {
        "periodo": period,
        "marca": brand_id or "",
        "canal": channel or "",
        "analista": analyst_id or "",
    }
    return report, query


def timing_cells(timing: Timing) -> dict[str, str]:
    return {
        "median": duration(timing.wall.median),
        "p90": duration(timing.wall.p90),
        "median_util": duration(timing.business.median),
        "p90_util": duration(timing.business.p90),
        "n": str(timing.wall.n),
    }


@router.get("/metricas")
async def dashboard(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    periodo: str | None = None,
    marca: str | None = None,
    canal: str | None = None,
    analista: str | None = None,
) -> HTMLResponse:
    _check_supervisor(analyst)
    report, query = await _load(
        session, periodo=periodo, marca=marca, canal=canal, analista=analista
    )
    options = await get_filter_options(session)
    context = {
        "report": report,
        "charts": charts(report),
        "weeks": week_chart(report),
        "query": query,
        "query_string": urlencode(query),
        "options": options,
        "channels": CHANNEL_NAMES,
        "pct": pct,
        "duration": duration,
        "timing_cells": timing_cells,
        "channel_name": channel_name,
        "definitions": DEFINITIONS,
        "geometry": {"width": WIDTH, "label_w": LABEL_W, "bar_h": BAR_H},
    }
    return render_page(request, "painel_metricas.html", context, analyst=analyst)


@router.get("/metricas/{table}.csv")
async def dashboard_csv(
    table: str,
    session: DbSession,
    analyst: PanelAnalyst,
    periodo: str | None = None,
    marca: str | None = None,
    canal: str | None = None,
    analista: str | None = None,
) -> Response:
    _check_supervisor(analyst)
    if table not in ROW_MODELS:
        raise ValidationFailed(f"Tabela desconhecida: {table!r}.")
    report, _ = await _load(
        session, periodo=periodo, marca=marca, canal=canal, analista=analista, tables=(table,)
    )
    response = Response(
        content=to_csv(table_rows(report, table), columns_of(ROW_MODELS[table])),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="metricas-{table}.csv"'},
    )
    apply_security_headers(response)
    return response
