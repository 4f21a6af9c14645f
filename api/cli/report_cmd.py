"""`tratativa report` — the metrics tables in the terminal, and as CSV.

    tratativa report --period 2026-11 [--brand "Marca"] [--channel whatsapp]
                     [--analyst ana@firma.com.br] [--csv out.csv] [--table channels]
    tratativa report rebuild      # recompute the rollups from the whole event stream

The figures come from the same read model as the API and the panel (api/metrics/service.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from api.errors import ValidationFailed
from api.metrics.export import ROW_MODELS, columns_of, flatten, table_rows, to_csv
from api.metrics.schemas import MetricsReport, Timing
from api.metrics.service import TABLES, get_metrics, require_analyst_id, require_brand_id

T = TypeVar("T")
out = Console()


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def with_dispose() -> T:
        from api.db import get_engine

        try:
            return await make()
        finally:
            await get_engine().dispose()

    return asyncio.run(with_dispose())


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def duration(seconds: float | None) -> str:
    """1d 2h, 3h 05min, 12min, 40s — what an operator reads at a glance."""
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
        return f"{minutes}min" + (f" {secs:02d}s" if secs else "")
    return f"{secs}s"


def _timing(t: Timing) -> str:
    if not t.wall.n:
        return "—"
    return (
        f"{duration(t.wall.median)} / {duration(t.wall.p90)} "
        f"(útil {duration(t.business.median)} / {duration(t.business.p90)}) n={t.wall.n}"
    )


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for index, column in enumerate(columns):
        table.add_column(column, justify="left" if index == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    return table


def print_report(report: MetricsReport, console: Console) -> None:
    f = report.filters
    period = f.period or (
        f"{f.date_from or '…'} a {f.date_to or '…'}" if f.date_from or f.date_to else "tudo"
    )
    console.print(f"[bold]Métricas[/bold] — período {period} ({f.timezone})")
    console.print(
        _table(
            "Por canal",
            ["canal", "conversas", "resposta", "entrega", "leitura", "transbordo", "opt-out",
             "acordo", "pagamento", "remoção", "conv. acordo", "acordos (atrib.)", "só bot"],
            [
                [r.channel, r.conversations, _pct(r.response_rate), _pct(r.delivery_rate),
                 _pct(r.read_rate), _pct(r.handoff_rate), _pct(r.opt_out_rate),
                 _pct(r.agreement_rate), _pct(r.payment_rate), _pct(r.removal_rate),
                 _pct(r.conversion_agreement), r.attributed_agreements, _pct(r.bot_only_share)]
                for r in report.channels
            ],
        )
    )  # fmt: skip
    console.print(
        _table(
            "Tempos por canal (mediana / p90; em horário útil; n)",
            ["canal", "1ª resp. bot", "1ª resp. humana", "resp. seguinte humana", "fila",
             "notificação → acordo"],
            [
                [r.channel, _timing(r.bot_first_response), _timing(r.human_first_response),
                 _timing(r.human_next_response), _timing(r.queue_wait),
                 _timing(r.notice_to_agreement)]
                for r in report.channels
            ],
        )
    )  # fmt: skip
    if report.providers:
        console.print(
            _table(
                "Por provedor",
                ["canal", "provedor", "conversas", "resposta", "enviadas", "entrega", "leitura"],
                [
                    [r.channel, r.provider, r.conversations, _pct(r.response_rate),
                     r.messages_sent, _pct(r.delivery_rate), _pct(r.read_rate)]
                    for r in report.providers
                ],
            )
        )  # fmt: skip
    console.print(
        _table(
            "Por analista",
            ["analista", "assumidas", "casos", "fila", "1ª resposta", "resp. seguinte", "SLA",
             "acordos", "valor", "desconto"],
            [
                [r.name, r.handoffs_taken, r.handoff_cases, _timing(r.queue_wait),
                 _timing(r.first_response), _timing(r.next_response), r.sla_breaches,
                 r.agreements, f"{r.agreed_amount:.2f}", _pct(r.discount_rate)]
                for r in report.analysts
            ],
        )
    )  # fmt: skip
    console.print(
        _table(
            "Por marca (funil)",
            ["marca", "casos", "notificado", "em atendimento", "acordo", "pago", "encerrado",
             "reaberto", "acordado", "recebido"],
            [
                [r.name, r.cases, r.notified, r.engaged, r.agreement, r.paid, r.closed,
                 r.reopened, f"{r.agreed_amount:.2f}", f"{r.received_amount:.2f}"]
                for r in report.brands
            ],
        )
    )  # fmt: skip
    console.print(
        _table(
            "Transbordos por motivo",
            ["canal", "motivo", "eventos", "casos"],
            [[r.channel, r.reason, r.events, r.cases] for r in report.handoff_reasons],
        )
    )
    console.print(
        _table(
            "Eventos e casos distintos",
            ["evento", "eventos", "casos", "valor"],
            [
                [r.kind, r.events, r.cases, "" if r.amount is None else f"{r.amount:.2f}"]
                for r in report.events
            ],
        )
    )


def long_csv(report: MetricsReport) -> str:
    """Every table in one CSV, one value per line: table, row (its key), metric, value."""
    import csv
    import io

    keys = {
        "channels": "channel",
        "providers": "provider",
        "analysts": "name",
        "brands": "name",
        "statuses": "status",
        "handoff_reasons": "reason",
        "events": "kind",
        "weeks": "week",
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["table", "row", "metric", "value"])
    for table in TABLES:
        for row in table_rows(report, table):
            flat = flatten(row)
            key = flat[keys[table]]
            if table in ("statuses", "handoff_reasons", "providers"):
                key = f"{flat.get('brand_id', flat.get('channel'))}/{key}"
            for metric, value in flat.items():
                writer.writerow([table, key, metric, "" if value is None else value])
    return buffer.getvalue()


def report(
    action: Annotated[
        str | None, typer.Argument(help="`rebuild`: recompute the rollups from the events")
    ] = None,
    period: Annotated[str | None, typer.Option(help="A month, AAAA-MM")] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="First day, AAAA-MM-DD (local)")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, AAAA-MM-DD")] = None,
    brand: Annotated[str | None, typer.Option(help="Brand name or id")] = None,
    channel: Annotated[str | None, typer.Option(help="whatsapp or email")] = None,
    analyst: Annotated[str | None, typer.Option(help="Analyst e-mail or id")] = None,
    table: Annotated[
        str | None, typer.Option(help=f"Only this table in the CSV: {', '.join(TABLES)}")
    ] = None,
    csv: Annotated[Path | None, typer.Option(help="Write the figures as CSV to this file")] = None,
) -> None:
    """Metrics report (per channel, per analyst, per brand); `report rebuild` recomputes it."""
    if action == "rebuild":
        _run(_rebuild)
        return
    if action is not None:
        raise ValidationFailed(f"ação desconhecida: {action!r} (use `rebuild` ou nada)")
    if table is not None and table not in TABLES:
        raise ValidationFailed(f"tabela desconhecida: {table!r} (use {', '.join(TABLES)})")
    if channel is not None and channel not in ("whatsapp", "email"):
        raise ValidationFailed(f"canal desconhecido: {channel!r} (use whatsapp ou email)")
    first = _day(date_from, "--from")
    last = _day(date_to, "--to")

    async def load() -> MetricsReport:
        from api.db import unit_of_work

        async with unit_of_work() as session:
            brand_id = analyst_id = None
            if brand is not None:
                brand_id = await require_brand_id(session, reference=brand)
            if analyst is not None:
                analyst_id = await require_analyst_id(session, reference=analyst)
            return await get_metrics(
                session,
                period=period,
                date_from=first,
                date_to=last,
                brand_id=brand_id,
                channel=channel,
                analyst_id=analyst_id,
            )

    result = _run(load)
    print_report(result, out)
    if csv is not None:
        text = (
            to_csv(table_rows(result, table), columns_of(ROW_MODELS[table]))
            if table
            else long_csv(result)
        )
        try:
            csv.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ValidationFailed(f"não foi possível gravar {csv}: {exc.strerror or exc}") from exc
        out.print(f"CSV gravado em {csv}")


def _day(value: str | None, option: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationFailed(f"data inválida em {option}: {value!r} (use AAAA-MM-DD)") from exc


async def _rebuild() -> None:
    from api.db import unit_of_work
    from api.metrics.rebuild import do_rebuild

    async with unit_of_work() as session:
        result = await do_rebuild(session)
    rows = ", ".join(f"{name}={count}" for name, count in result.rows.items())
    out.print(f"rollups refeitos: {result.events} eventos em {result.seconds:.1f} s ({rows})")
