"""`tratativa` — operator commands (database, import, users, brands, demo data, server)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from api.analysts.models import Role
from api.cli.errors import GuardedTyper
from api.config import ensure_secret_key_file
from api.errors import AppError, ConfigurationError

T = TypeVar("T")

app = GuardedTyper(
    help="Tratativa: CRM conversacional para proteção de marcas.", no_args_is_help=True
)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
import_app = typer.Typer(help="Import data from other tools.", no_args_is_help=True)
users_app = typer.Typer(help="Analyst accounts.", no_args_is_help=True)
brands_app = typer.Typer(help="Client brands and their settlement policy.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(users_app, name="users")
app.add_typer(brands_app, name="brands")

err = Console(stderr=True)
out = Console()


def _run(make: Callable[[], Awaitable[T]]) -> T:
    """Run an async task; an AppError becomes a clear message and exit code 1."""

    async def _with_dispose() -> T:
        from api.db import get_engine

        try:
            return await make()
        finally:
            await get_engine().dispose()

    try:
        return asyncio.run(_with_dispose())
    except AppError as exc:
        err.print(f"[red]erro:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from api.migrate import upgrade

    upgrade(revision=revision)
    out.print("database at", revision)


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' empties the database)."""
    from api.migrate import downgrade

    downgrade(revision=revision)
    out.print("database at", revision)


@import_app.command("cases")
def import_cases(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Import a detection tool's CSV export (upsert; bad rows reported with their line)."""
    from api.cases.importer import RowRejected, do_import_rows, read_rows
    from api.db import unit_of_work

    try:
        text = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        text = file.read_text(encoding="latin-1")
    lines = text.splitlines(keepends=True)
    total = max(len([line for line in lines[1:] if line.strip()]), 0)

    async def work() -> None:
        try:
            rows = list(read_rows(lines))
        except RowRejected as exc:
            err.print(f"[red]erro:[/red] {exc.message}")
            raise typer.Exit(2) from exc
        with Progress(
            TextColumn("importando"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            disable=not sys.stderr.isatty(),
        ) as progress:
            task = progress.add_task("rows", total=total)
            async with unit_of_work() as session:
                summary = await do_import_rows(session, rows, on_row=lambda: progress.advance(task))
        for error in summary.errors:
            err.print(f"linha {error.line}: {error.reason}")
        out.print(summary.line())
        if summary.errors:
            raise typer.Exit(3)

    _run(work)


@users_app.command("create")
def users_create(
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="TRATATIVA_PASSWORD",
            help="At least 8 characters (prompted when omitted).",
        ),
    ],
    role: Annotated[Role, typer.Option(case_sensitive=False)] = Role.ANALYST,
    name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create an analyst, supervisor or admin account."""
    from api.analysts.service import create_analyst
    from api.db import unit_of_work

    async def work() -> None:
        async with unit_of_work() as session:
            analyst = await create_analyst(
                session, email=email, password=password, role=role, name=name
            )
            out.print(f"created {analyst.role} {analyst.email} (id {analyst.id})")

    _run(work)


@users_app.command("set-password")
def users_set_password(
    email: str,
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="TRATATIVA_PASSWORD",
            help="At least 8 characters (prompted when omitted).",
        ),
    ],
) -> None:
    """Set a user's password; every panel session and API token of the user ends."""
    from api.analysts.service import do_set_password, require_analyst_by_email
    from api.db import unit_of_work

    async def work() -> None:
        async with unit_of_work() as session:
            analyst = await require_analyst_by_email(session, email=email)
            ended = await do_set_password(session, analyst=analyst, password=password)
            out.print(f"password changed for {analyst.email}; {ended} session(s) ended")

    _run(work)


@users_app.command("deactivate")
def users_deactivate(email: str) -> None:
    """Lock a user out: refuse new logins and end every panel session and API token."""
    from api.analysts.service import do_deactivate, require_analyst_by_email
    from api.db import unit_of_work

    async def work() -> None:
        async with unit_of_work() as session:
            analyst = await require_analyst_by_email(session, email=email)
            ended = await do_deactivate(session, analyst=analyst)
            out.print(f"deactivated {analyst.email}; {ended} session(s) ended")

    _run(work)


@users_app.command("activate")
def users_activate(email: str) -> None:
    """Let a deactivated user log in again (old sessions stay ended)."""
    from api.analysts.service import require_analyst_by_email
    from api.db import unit_of_work

    async def work() -> None:
        async with unit_of_work() as session:
            analyst = await require_analyst_by_email(session, email=email)
            analyst.active = True
            out.print(f"activated {analyst.email}")

    _run(work)


@users_app.command("unlock")
def users_unlock(email: str) -> None:
    """Forget the failed logins of an account, lifting its login limit at once."""
    from api.analysts.throttle import RedisAttemptStore, account_key, get_login_throttle
    from api.db import unit_of_work

    async def work() -> None:
        throttle = get_login_throttle()
        try:
            async with unit_of_work() as session:
                await throttle.store.clear(session, account_key(email))
        finally:
            if isinstance(throttle.store, RedisAttemptStore):
                await throttle.store.close()
        out.print(f"failed logins of {email.strip().lower()} forgotten")

    _run(work)


def _check_secret_key() -> None:
    """Refuse to start a process that signs tokens with a public key (one line, exit 1)."""
    from api.config import check_secret_key, get_settings

    try:
        check_secret_key(get_settings())
    except AppError as exc:
        err.print(f"[red]erro:[/red] {exc.message}", soft_wrap=True)
        raise typer.Exit(1) from exc


@brands_app.command("create")
def brands_create(
    name: str,
    base: Annotated[
        Decimal, typer.Option(help="Amount in BRL of a case imported without its own amount.")
    ],
    floor: Annotated[
        Decimal | None,
        typer.Option(help="Absolute floor in BRL: the bot never accepts less alone."),
    ] = None,
    max_discount: Annotated[
        Decimal | None,
        typer.Option(
            help="Largest discount, in % of the case's amount, the bot may accept alone. "
            "With --floor too, the stricter bound applies; with neither, no discount."
        ),
    ] = None,
    max_installments: Annotated[int, typer.Option()] = 1,
    min_installment: Annotated[
        Decimal, typer.Option(help="Smallest installment in BRL.")
    ] = Decimal("100.00"),
    pix_key: Annotated[str | None, typer.Option(help="The firm's official Pix key.")] = None,
    payee_name: Annotated[str | None, typer.Option()] = None,
    payee_city: Annotated[str | None, typer.Option()] = None,
    instructions: Annotated[str, typer.Option(help="Payment instructions shown.")] = "",
) -> None:
    """Create a brand with its settlement policy."""
    from api.brands.service import create_brand, describe_policy
    from api.db import unit_of_work

    async def work() -> None:
        async with unit_of_work() as session:
            brand = await create_brand(
                session,
                name=name,
                base_amount=base,
                floor_amount=floor,
                max_discount_percent=max_discount,
                max_installments=max_installments,
                min_installment_amount=min_installment,
                pix_key=pix_key,
                payee_name=payee_name,
                payee_city=payee_city,
                payment_instructions=instructions,
            )
            out.print(f"created brand {brand.name} (id {brand.id}): {describe_policy(brand)}")

    _run(work)


@app.command("demo-seed")
def demo_seed() -> None:
    """Load the demo brand, analysts and cases (does nothing when already loaded)."""
    from api.db import unit_of_work
    from api.demo import DEMO_PASSWORD, do_seed_demo

    async def work() -> None:
        async with unit_of_work() as session:
            result = await do_seed_demo(session)
        if result.created:
            out.print(f"demo data loaded: {result.cases} cases")
            for email in result.analysts:
                out.print(f"  login {email} / {DEMO_PASSWORD}")
        else:
            out.print(f"demo data already present ({result.cases} cases)")

    _run(work)


@app.command("setup")
def setup(seed_if_empty: bool = True) -> None:
    """Migrate the database and, when it has no case yet, load the demo data; create
    var/secret_key (0600) for `make run` when missing."""
    from api.db import unit_of_work
    from api.demo import is_empty
    from api.migrate import upgrade

    ensure_secret_key_file()
    upgrade()

    async def empty() -> bool:
        async with unit_of_work() as session:
            return await is_empty(session)

    if seed_if_empty and _run(empty):
        demo_seed()


@app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    reload: bool = False,
    workers: Annotated[
        int | None,
        typer.Option(help="service processes sharing the port (default SERVICE_WORKERS, 1)"),
    ] = None,
) -> None:
    """Run the HTTP service (API, webhooks, panel)."""
    import uvicorn

    from api.config import get_settings

    _check_secret_key()
    settings = get_settings()
    processes = workers if workers is not None else settings.service_workers
    if processes < 1:
        raise ConfigurationError("--workers: pelo menos 1 processo.")
    if processes > 1 and not settings.redis_url:
        raise ConfigurationError(
            "--workers acima de 1 exige REDIS_URL: as notificações ao vivo só chegam aos "
            "navegadores ligados a outro processo pelo Redis."
        )
    if processes > 1 and reload:
        raise ConfigurationError("--reload roda um processo só: tire o --workers.")
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        workers=processes,
        host=host or settings.host,
        port=port or settings.port,
        reload=reload,
        # Forwarded headers are read by the app, only from TRUSTED_PROXIES (api/web/proxies.py).
        proxy_headers=False,
    )


@app.command("worker")
def worker() -> None:
    """Run the worker: outbox delivery, left-behind bot turns, e-mail ingestion."""
    import logging

    from api.runtime import freeze_loaded_objects, new_event_loop, quiet_chatty_loggers
    from api.worker import run_worker

    _check_secret_key()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_chatty_loggers()
    freeze_loaded_objects()
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        runner.run(run_worker())


from api.automations.cli import rules_app  # noqa: E402
from api.cli.chat_cmd import chat  # noqa: E402
from api.cli.eval_cmd import eval_app  # noqa: E402
from api.cli.mailboxes_cmd import mailboxes_app  # noqa: E402
from api.cli.numbers_cmd import numbers_app  # noqa: E402
from api.cli.operations_cmd import operations_app  # noqa: E402
from api.cli.outreach_cmd import outreach_app  # noqa: E402
from api.cli.report_cmd import report  # noqa: E402

app.add_typer(eval_app, name="eval")
app.add_typer(operations_app, name="operations")
app.add_typer(outreach_app, name="outreach")
app.add_typer(numbers_app, name="numbers")
app.add_typer(mailboxes_app, name="mailboxes")
app.add_typer(rules_app, name="rules")
app.command("report")(report)

app.command("chat")(chat)


if __name__ == "__main__":
    app()
