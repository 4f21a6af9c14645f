"""`tratativa rules` — automation rules from the command line.

    tratativa rules list
    tratativa rules show 3
    tratativa rules enable 3 / tratativa rules disable 3
    tratativa rules create regra.json          # {"name": …, "trigger": …, "actions": […]}
    tratativa rules update 3 regra.json        # replaces it; cancels what it had scheduled
    tratativa rules dry-run INF-2026-000123 [--at 2026-12-07T10:00-03:00]
    tratativa rules executions [--case INF-2026-000123]

A rule that names an unknown template or an illegal status move is refused with one line
(`erro: …`), like every operator error of the CLI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from api.config import get_settings
from api.errors import NotFound, ValidationFailed

T = TypeVar("T")
out = Console(highlight=False)
rules_app = typer.Typer(help="Automation rules (supervisors' rules engine).", no_args_is_help=True)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def with_dispose() -> T:
        from api.db import get_engine

        try:
            return await make()
        finally:
            await get_engine().dispose()

    return asyncio.run(with_dispose())


def _read_rule(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise NotFound(f"arquivo não encontrado: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"JSON inválido em {path}: {exc.msg} (linha {exc.lineno})") from exc
    if not isinstance(data, dict):
        raise ValidationFailed(f"{path}: a regra deve ser um objeto JSON")
    return data


def _moment(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValidationFailed(f"--at inválido: {value!r} (ex.: 2026-12-07T10:00-03:00)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(get_settings().business_timezone))
    return moment.astimezone(dt.UTC)


@rules_app.command("list")
def list_rules() -> None:
    """Every rule, enabled or not, with what it does."""

    async def load() -> list[Any]:
        from api.automations.service import get_all_rules, rule_out
        from api.db import unit_of_work

        async with unit_of_work() as session:
            return [rule_out(rule) for rule in await get_all_rules(session)]

    table = Table("id", "regra", "situação", "o que faz")
    for rule in _run(load):
        table.add_row(
            str(rule.id),
            rule.name + (" (padrão)" if rule.builtin_key else ""),
            "ativa" if rule.enabled else "desativada",
            rule.summary,
        )
    out.print(table)


@rules_app.command("show")
def show_rule(rule_id: int) -> None:
    """A rule as JSON (the shape `create` and `update` read)."""

    async def load() -> Any:
        from api.automations.service import require_rule, rule_out
        from api.db import unit_of_work

        async with unit_of_work() as session:
            return rule_out(await require_rule(session, rule_id=rule_id))

    rule = _run(load)
    out.print_json(rule.model_dump_json())


def _set_enabled(rule_id: int, enabled: bool) -> None:
    async def change() -> str:
        from api.automations.service import do_set_enabled, require_rule
        from api.db import unit_of_work

        async with unit_of_work() as session:
            rule = await require_rule(session, rule_id=rule_id)
            await do_set_enabled(session, rule=rule, enabled=enabled, analyst=None)
            return rule.name

    name = _run(change)
    out.print(f"regra {rule_id} ({name}) {'ativada' if enabled else 'desativada'}")


@rules_app.command("enable")
def enable_rule(rule_id: int) -> None:
    _set_enabled(rule_id, True)


@rules_app.command("disable")
def disable_rule(rule_id: int) -> None:
    """Disable a rule; what it had scheduled is cancelled."""
    _set_enabled(rule_id, False)


@rules_app.command("create")
def create_rule_cmd(path: Path) -> None:
    """Create a rule from a JSON file (validated: templates, events, status moves)."""
    data = _read_rule(path)

    async def create() -> tuple[int, str]:
        from api.automations.service import create_rule, parse_spec
        from api.db import unit_of_work

        async with unit_of_work() as session:
            rule = await create_rule(session, spec=parse_spec(data), analyst=None)
            return rule.id, rule.name

    rule_id, name = _run(create)
    out.print(f"regra {rule_id} criada: {name}")


@rules_app.command("update")
def update_rule_cmd(rule_id: int, path: Path) -> None:
    """Replace a rule with a JSON file; what the old version scheduled is cancelled."""
    data = _read_rule(path)

    async def update() -> int:
        from api.automations.service import do_update_rule, parse_spec, require_rule
        from api.db import unit_of_work

        async with unit_of_work() as session:
            rule = await require_rule(session, rule_id=rule_id)
            await do_update_rule(session, rule=rule, spec=parse_spec(data), analyst=None)
            return rule.version

    version = _run(update)
    out.print(f"regra {rule_id} atualizada (versão {version})")


@rules_app.command("dry-run")
def dry_run_cmd(
    reference: str,
    at: Annotated[str | None, typer.Option(help="As if it were this moment")] = None,
) -> None:
    """Which rules would fire for a case now (or --at), and what they would do."""
    moment = _moment(at)

    async def run() -> Any:
        from api.automations.dryrun import get_dry_run
        from api.cases.service import get_case_by_reference
        from api.db import unit_of_work

        async with unit_of_work() as session:
            case = await get_case_by_reference(session, reference=reference)
            if case is None:
                raise NotFound(f"caso {reference} não encontrado")
            return await get_dry_run(session, case_id=case.id, now=moment)

    result = _run(run)
    for item in result.rules:
        mark = "DISPARARIA" if item.would_fire else "não"
        out.print(f"[{mark}] {item.rule_name}: {item.reason}")
        for action in item.actions:
            out.print(f"    - {action.description}" + (f" ({action.note})" if action.note else ""))


@rules_app.command("executions")
def executions_cmd(
    case: Annotated[str | None, typer.Option(help="Only this case (reference)")] = None,
    limit: int = 30,
) -> None:
    """The latest firings (the execution ledger)."""

    async def load() -> list[Any]:
        from api.automations.service import get_executions
        from api.cases.service import get_case_by_reference
        from api.db import unit_of_work

        async with unit_of_work() as session:
            case_id = None
            if case is not None:
                found = await get_case_by_reference(session, reference=case)
                if found is None:
                    raise NotFound(f"caso {case} não encontrado")
                case_id = found.id
            return list(await get_executions(session, case_id=case_id, limit=limit))

    table = Table("quando", "regra", "caso", "resultado", "o que fez")
    for execution, name in _run(load):
        table.add_row(
            f"{execution.created_at:%Y-%m-%d %H:%M}",
            name,
            str(execution.case_id or ""),
            execution.state,
            execution.summary,
        )
    out.print(table)
