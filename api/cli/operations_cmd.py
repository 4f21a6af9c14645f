"""`tratativa operations` — Alerts, automations and outreach.

    tratativa operations run-due [--at 2026-12-07T10:00-03:00]
    tratativa operations calendar
    tratativa operations holidays [list | add 2026-01-25 "Aniversário de SP" | remove 2026-01-25]
    tratativa operations alerts --analyst ana@firma.com.br [--scope all]

`run-due` does one pass of the time-based alerts and rules now, or as if it were `--at` (for
cron-minded operators and acceptance checks); running it twice for the same moment changes
nothing the second time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from api.config import get_settings
from api.errors import ValidationFailed

T = TypeVar("T")
out = Console(highlight=False)

operations_app = typer.Typer(help="Alerts, automations and outreach.", no_args_is_help=True)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def with_dispose() -> T:
        from api.db import get_engine

        try:
            return await make()
        finally:
            await get_engine().dispose()

    return asyncio.run(with_dispose())


def parse_moment(value: str | None) -> dt.datetime:
    """An ISO moment; without an offset it is read in the firm's time zone. None: now."""
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(
            f"--at inválido: {value!r} (use AAAA-MM-DDTHH:MM-03:00, ex.: 2026-12-07T10:00-03:00)"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(get_settings().business_timezone))
    return moment.astimezone(dt.UTC)


def _parse_day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(f"data inválida: {value!r} (use AAAA-MM-DD)") from exc


@operations_app.command("run-due")
def run_due(
    at: Annotated[
        str | None,
        typer.Option(help="Evaluate as if it were this moment, e.g. 2026-12-07T10:00-03:00"),
    ] = None,
) -> None:
    """One pass of the time-based alerts, automation rules and queued notices (outreach),
    now or as of --at."""
    moment = parse_moment(at)

    async def once() -> tuple[int, int, int]:
        from api.automations.due import run_due_rules
        from api.operations.due import run_due_alerts
        from api.outreach.service import run_due_outreach

        raised = await run_due_alerts(moment)
        taken = await run_due_rules(moment)
        notices = (await run_due_outreach(now=moment)).processed
        return raised, taken, notices

    raised, taken, notices = _run(once)
    local = moment.astimezone(ZoneInfo(get_settings().business_timezone))
    out.print(
        f"em {local:%Y-%m-%d %H:%M %z}: {raised} alerta(s) disparado(s), "
        f"{taken} ação(ões) de regras, {notices} notificação(ões) da fila de disparos"
    )


@operations_app.command("calendar")
def calendar() -> None:
    """The business calendar in force (settings, an admin's changes and the firm's holidays)."""

    async def load() -> dict[str, object]:
        from api.db import unit_of_work, utcnow
        from api.operations.calendar import load_calendar

        async with unit_of_work() as session:
            cal = await load_calendar(session)
            now = utcnow()
            return {
                **cal.describe(),
                "aberto agora": cal.is_open(now),
                "próxima abertura": (
                    cal.next_open(now).astimezone(cal.tz).strftime("%Y-%m-%d %H:%M")
                ),
            }

    for key, value in _run(load).items():
        out.print(f"{key}: {value}")


@operations_app.command("holidays")
def holidays(
    action: Annotated[str, typer.Argument(help="list, add or remove")] = "list",
    day: Annotated[str | None, typer.Argument(help="AAAA-MM-DD")] = None,
    name: Annotated[str | None, typer.Argument(help="Name of the holiday (add)")] = None,
) -> None:
    """The firm's own closed days (beyond the national holidays)."""
    if action not in ("list", "add", "remove"):
        raise ValidationFailed(f"ação desconhecida: {action!r} (use list, add ou remove)")
    if action != "list" and day is None:
        raise ValidationFailed(f"informe a data: tratativa operations holidays {action} AAAA-MM-DD")
    if action == "add" and not name:
        raise ValidationFailed("informe o nome do feriado")

    async def apply() -> list[tuple[dt.date, str]]:
        from api.db import unit_of_work
        from api.operations.calendar import do_add_holiday, do_remove_holiday, get_holidays

        async with unit_of_work() as session:
            if action == "add":
                assert day is not None and name is not None
                await do_add_holiday(session, day=_parse_day(day), name=name, analyst_id=None)
            elif action == "remove":
                assert day is not None
                if not await do_remove_holiday(session, day=_parse_day(day)):
                    raise ValidationFailed(f"feriado {day} não cadastrado")
            return [(h.day, h.name) for h in await get_holidays(session)]

    rows = _run(apply)
    if not rows:
        out.print("nenhum feriado da empresa cadastrado (os nacionais vêm da biblioteca holidays)")
        return
    for when, what in rows:
        out.print(f"{when.isoformat()}  {what}")


@operations_app.command("alerts")
def alerts(
    analyst: Annotated[str, typer.Option(help="The analyst's e-mail")],
    scope: Annotated[
        str, typer.Option(help="active, snoozed, acknowledged, resolved or all")
    ] = "active",
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """An analyst's alerts, newest first, as the notification centre shows them."""

    async def load() -> tuple[int, list[tuple[int, str, str, str, dt.datetime]]]:
        from api.analysts.service import require_analyst_by_email
        from api.db import unit_of_work, utcnow
        from api.operations.alerts import count_active, get_alerts

        async with unit_of_work() as session:
            who = await require_analyst_by_email(session, email=analyst)
            now = utcnow()
            items = await get_alerts(session, analyst=who, now=now, scope=scope, limit=limit)
            unread = await count_active(session, analyst=who, now=now)
            return unread, [(a.id, a.kind, a.state, a.title, a.created_at) for a in items]

    unread, rows = _run(load)
    zone = ZoneInfo(get_settings().business_timezone)
    table = Table(title=f"Alertas de {analyst} ({unread} não lido(s))")
    for column in ("id", "tipo", "estado", "título", "quando"):
        table.add_column(column)
    for alert_id, kind, state, title, created in rows:
        table.add_row(
            str(alert_id), kind, state, title, created.astimezone(zone).strftime("%d/%m %H:%M")
        )
    out.print(table)
