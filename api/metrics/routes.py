"""HTTP API for metrics (JSON and CSV), for supervisors: `/api/v1/metrics…`.

The JSON and the CSV of a table come from the same `get_metrics` call the panel and
`tratativa report` use; definitions at `/api/v1/metrics/definitions`.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel

from api.analysts.models import Analyst, Role
from api.conversations.models import Channel
from api.metrics.definitions import DEFINITIONS
from api.metrics.export import ROW_MODELS, columns_of, table_rows, to_csv
from api.metrics.schemas import (
    AnalystRow,
    BrandRow,
    ChannelRow,
    EventCountRow,
    MetricsReport,
    ProviderRow,
    ReasonRow,
    StatusRow,
    WeekRow,
)
from api.metrics.service import get_metrics
from api.web.deps import SessionDep, require_role
from api.web.params import QueryId

router = APIRouter(prefix="/api/v1/metrics", tags=["metrics"])
Supervisor = Annotated[Analyst, Depends(require_role(Role.SUPERVISOR))]
Period = Annotated[
    str | None,
    Query(
        pattern=r"^(20[0-9]{2}|2100)-(0[1-9]|1[0-2])$",
        description="A month, YYYY-MM (local business time zone)",
    ),
]
Day = Annotated[
    dt.date | None,
    Query(description="YYYY-MM-DD, local; ignored with `period`; from/to in either order"),
]
TableName = Literal[
    "channels", "providers", "analysts", "brands", "statuses", "handoff_reasons", "events", "weeks"
]


class Filter(BaseModel):
    period: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    brand_id: int | None = None
    channel: Channel | None = None
    analyst_id: int | None = None


def _filters(
    period: Period = None,
    date_from: Day = None,
    date_to: Day = None,
    brand_id: QueryId = None,
    channel: Channel | None = None,
    analyst_id: QueryId = None,
) -> Filter:
    return Filter(
        period=period,
        date_from=date_from,
        date_to=date_to,
        brand_id=brand_id,
        channel=channel,
        analyst_id=analyst_id,
    )


Filters = Annotated[Filter, Depends(_filters)]


async def _report(session: SessionDep, filters: Filter, tables: tuple[str, ...]) -> MetricsReport:
    return await get_metrics(
        session,
        period=filters.period,
        date_from=filters.date_from,
        date_to=filters.date_to,
        brand_id=filters.brand_id,
        channel=str(filters.channel) if filters.channel else None,
        analyst_id=filters.analyst_id,
        tables=tables,
    )


class Definition(BaseModel):
    key: str
    label: str
    definition: str
    definition_pt: str


@router.get("", summary="Every metrics table for the filters")
async def all_metrics(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> MetricsReport:
    return await _report(session, filters, tuple(ROW_MODELS))


@router.get("/definitions", summary="What each figure means")
async def definitions(supervisor: Supervisor) -> list[Definition]:
    return [
        Definition(key=key, label=label, definition=english, definition_pt=portuguese)
        for key, label, english, portuguese in DEFINITIONS
    ]


@router.get("/channels", summary="Per channel: delivery, response, handoff, outcomes, times")
async def channels(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[ChannelRow]:
    return (await _report(session, filters, ("channels",))).channels


@router.get("/providers", summary="Per WhatsApp provider: response and delivery")
async def providers(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[ProviderRow]:
    return (await _report(session, filters, ("providers",))).providers


@router.get("/analysts", summary="Per analyst: handoffs, waits, responses, SLA, agreements")
async def analysts(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[AnalystRow]:
    return (await _report(session, filters, ("analysts",))).analysts


@router.get("/brands", summary="Per brand: the funnel and the amounts agreed and received")
async def brands(session: SessionDep, supervisor: Supervisor, filters: Filters) -> list[BrandRow]:
    return (await _report(session, filters, ("brands",))).brands


@router.get("/statuses", summary="Cases by current status, per brand")
async def statuses(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[StatusRow]:
    return (await _report(session, filters, ("statuses",))).statuses


@router.get("/handoff-reasons", summary="Handoffs by reason and channel")
async def handoff_reasons(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[ReasonRow]:
    return (await _report(session, filters, ("handoff_reasons",))).handoff_reasons


@router.get("/events", summary="Events and distinct cases per kind")
async def events(
    session: SessionDep, supervisor: Supervisor, filters: Filters
) -> list[EventCountRow]:
    return (await _report(session, filters, ("events",))).events


@router.get("/weeks", summary="Weekly trend: cohort outcomes and response times")
async def weeks(session: SessionDep, supervisor: Supervisor, filters: Filters) -> list[WeekRow]:
    return (await _report(session, filters, ("weeks",))).weeks


@router.get(
    "/{table}.csv",
    summary="One table as CSV (the same query as the JSON and the panel)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "CSV, header first"}},
)
async def table_csv(
    table: TableName, session: SessionDep, supervisor: Supervisor, filters: Filters
) -> Response:
    report = await _report(session, filters, (table,))
    body = to_csv(table_rows(report, table), columns_of(ROW_MODELS[table]))
    return Response(
        content=body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="metricas-{table}.csv"'},
    )
