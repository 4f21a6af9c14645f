"""Operator errors as one clear line: every `tratativa` command goes through `GuardedTyper`.

What an operator can cause (a database never migrated or unreachable, a missing file, a bad
setting, a wrong argument) is printed as one line on stderr with a non-zero exit; anything else
as one line naming the error. `--debug` (anywhere on the command line) or TRATATIVA_DEBUG=1
shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import typer
from rich.console import Console

from api.errors import AppError


def _click_exceptions() -> ModuleType:
    """Typer ≥ 0.20 vendors its own copy of click; its exceptions are the ones raised."""
    try:
        return importlib.import_module("typer._click.exceptions")
    except ImportError:  # pragma: no cover - older Typer on the real click
        return importlib.import_module("click.exceptions")


click_exceptions = _click_exceptions()

DEBUG_FLAG = "--debug"
MIGRATE_HINT = "banco de dados sem migração: rode `tratativa db upgrade`"
OUTDATED_HINT = "banco de dados desatualizado: rode `tratativa db upgrade`"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130

_err = Console(stderr=True, soft_wrap=True, highlight=False)

# A missing column (SQLite, PostgreSQL through asyncpg/psycopg): migrations are behind.
_NO_COLUMN = ("no such column", "undefinedcolumn", "has no column")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception, its causes and contexts, and the DB-API error SQLAlchemy wraps."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]


def _database_target() -> str:
    """Where the configured database is, without credentials."""
    try:
        from sqlalchemy.engine import make_url

        from api.config import get_settings

        url = make_url(get_settings().database_url)
    except Exception:
        return "o banco configurado em DATABASE_URL"
    if url.get_backend_name() == "sqlite":
        return f"o arquivo SQLite {url.database}"
    port = f":{url.port}" if url.port else ""
    return f"{url.get_backend_name()} em {url.host or 'localhost'}{port}/{url.database or ''}"


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:300]


def describe(exc: BaseException) -> tuple[str, int]:
    """The line an operator reads for an exception, and the exit code."""
    if isinstance(exc, KeyboardInterrupt | typer.Abort):
        return "interrompido", EXIT_INTERRUPTED
    chain = list(_chain(exc))
    for item in chain:
        if isinstance(item, AppError):
            return item.message, EXIT_ERROR
    for item in chain:
        name = type(item).__name__.lower()
        text = f"{name} {item}".lower()
        if any(marker in text for marker in _NO_COLUMN):
            return OUTDATED_HINT, EXIT_ERROR
        if (
            "undefinedtable" in name
            or "no such table" in text
            or ("relation" in text and "does not exist" in text)
        ):
            return MIGRATE_HINT, EXIT_ERROR
        if "invalidcatalogname" in name or ("database" in text and "does not exist" in text):
            return f"o banco de dados não existe: {_database_target()}", EXIT_ERROR
        if "invalidpassword" in name or "authentication failed" in text:
            return (
                f"o banco de dados recusou o usuário ou a senha ({_database_target()})",
                EXIT_ERROR,
            )
        if "unable to open database file" in text:
            return f"não foi possível abrir {_database_target()}", EXIT_ERROR
    for item in chain:
        module = type(item).__module__
        if module.startswith("alembic"):
            return f"migração: {_one_line(item)}", EXIT_ERROR
        if module.startswith("redis"):
            return f"Redis indisponível (REDIS_URL): {_one_line(item)}", EXIT_ERROR
    for item in chain:
        if isinstance(item, FileNotFoundError | IsADirectoryError | PermissionError):
            what = {
                FileNotFoundError: "arquivo não encontrado",
                IsADirectoryError: "é uma pasta, não um arquivo",
                PermissionError: "sem permissão para ler ou gravar",
            }[type(item)]
            return f"{what}: {item.filename or _one_line(item)}", EXIT_ERROR
        if isinstance(item, ConnectionError | TimeoutError) or (
            isinstance(item, OSError) and item.errno is not None
        ):
            return (
                f"não foi possível conectar ao banco de dados ({_database_target()}): "
                f"{_one_line(item.strerror or item)}",
                EXIT_ERROR,
            )
    for item in chain:
        if type(item).__name__ == "ValidationError" and type(item).__module__.startswith(
            "pydantic"
        ):
            errors: list[dict[str, Any]] = item.errors()  # type: ignore[attr-defined]
            first = errors[0] if errors else {}
            field = ".".join(str(p) for p in first.get("loc", ())).upper() or "?"
            return f"configuração inválida: {field}: {first.get('msg', '')}", EXIT_ERROR
    return (
        f"erro inesperado ({type(exc).__name__}: {_one_line(exc)}); "
        f"rode com {DEBUG_FLAG} para ver o rastreamento",
        EXIT_ERROR,
    )


def _debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    if os.environ.get("TRATATIVA_DEBUG", "").lower() in {"1", "true", "yes"}:
        return True, [a for a in argv if a != DEBUG_FLAG]
    return DEBUG_FLAG in argv, [a for a in argv if a != DEBUG_FLAG]


def fail(message: str, code: int = EXIT_ERROR) -> None:
    _err.print(f"[red]erro:[/red] {message}", markup=True)
    sys.exit(code)


def _quiet_thread_error(args: threading.ExceptHookArgs) -> None:
    """A driver's helper thread failing after the command gave up (aiosqlite posting to a
    closed loop) adds nothing to the line already printed."""
    if isinstance(args.exc_value, RuntimeError) and "loop is closed" in str(args.exc_value):
        return
    if args.exc_value is not None:
        _err.print(f"aviso: {type(args.exc_value).__name__}: {_one_line(args.exc_value)}")


class GuardedTyper(typer.Typer):
    """A Typer app whose operator errors are one line and a non-zero exit (see module doc)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "epilog", f"Erros saem em uma linha; {DEBUG_FLAG} mostra o rastreamento completo."
        )
        super().__init__(**kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        debug, argv = _debug_requested(list(kwargs.pop("args", None) or sys.argv[1:]))
        if debug:
            return super().__call__(*args, args=argv, **kwargs)
        threading.excepthook = _quiet_thread_error
        try:
            result = super().__call__(*args, args=argv, standalone_mode=False, **kwargs)
        except click_exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click_exceptions.ClickException as exc:
            hint = ""
            if isinstance(exc, click_exceptions.UsageError) and exc.ctx is not None:
                hint = f" (veja `{exc.ctx.command_path} --help`)"
            fail(_one_line(exc.format_message()) + hint, exc.exit_code)
        except SystemExit:
            raise
        except BaseException as exc:
            message, code = describe(exc)
            fail(message, code)
        sys.exit(result if isinstance(result, int) else 0)
