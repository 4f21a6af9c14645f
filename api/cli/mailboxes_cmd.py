"""`tratativa mailboxes` — Mailboxes (IMAP, Gmail, Microsoft 365).

    tratativa mailboxes add gmail atendimento atendimento@firma.com.br \\
        --client-id 123.apps.googleusercontent.com \\
        --client-secret-env GMAIL_CLIENT_SECRET --refresh-token-env GMAIL_REFRESH_TOKEN \\
        --topic projects/firma/topics/gmail
    tratativa mailboxes add gmail cobranca cobranca@firma.com.br \\
        --service-account-env GMAIL_SERVICE_ACCOUNT_JSON      # domain-wide delegation
    tratativa mailboxes add graph juridico juridico@firma.com.br --tenant <tenant id> \\
        --client-id <app id> --client-secret-env GRAPH_CLIENT_SECRET --subscribe
    tratativa mailboxes add imap outra outra@firma.com.br --host imap.firma.com.br \\
        --user outra@firma.com.br --password-env IMAP_OUTRA_PASSWORD
    tratativa mailboxes list
    tratativa mailboxes sync [NOME…]
    tratativa mailboxes disable NOME | enable NOME

Secrets never go in the table: the `--…-env` options name the environment variables that hold
them (the worker and the service read them when they need them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from api.channels.mailboxes.models import Mailbox, MailboxProvider
from api.channels.mailboxes.runner import PassResult, sync_due
from api.channels.mailboxes.service import (
    create_mailbox,
    do_set_enabled,
    get_mailboxes,
    short_cursor,
)
from api.config import get_settings
from api.db import get_engine, unit_of_work
from api.errors import ValidationFailed

T = TypeVar("T")

mailboxes_app = typer.Typer(help="Mailboxes (IMAP, Gmail, Microsoft 365).", no_args_is_help=True)
out = Console(highlight=False)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def work() -> T:
        try:
            return await make()
        finally:
            await get_engine().dispose()

    return asyncio.run(work())


@mailboxes_app.command("add")
def add(
    provider: Annotated[str, typer.Argument(help="imap, gmail ou graph")],
    name: Annotated[str, typer.Argument(help="Nome curto da caixa (único)")],
    address: Annotated[str, typer.Argument(help="Endereço de e-mail da caixa")],
    client_id: Annotated[str | None, typer.Option(help="gmail/graph: client id do app")] = None,
    client_secret_env: Annotated[
        str | None, typer.Option(help="gmail/graph: NOME da variável com o client secret")
    ] = None,
    refresh_token_env: Annotated[
        str | None, typer.Option(help="gmail: NOME da variável com o refresh token")
    ] = None,
    service_account_env: Annotated[
        str | None,
        typer.Option(
            help="gmail: NOME da variável com a chave JSON de uma conta de serviço com "
            "delegação no domínio (no lugar de client id/secret e refresh token)"
        ),
    ] = None,
    topic: Annotated[
        str | None, typer.Option(help="gmail: tópico Pub/Sub do users.watch (projects/…)")
    ] = None,
    token_uri: Annotated[str | None, typer.Option(help="gmail: endpoint OAuth")] = None,
    tenant: Annotated[str | None, typer.Option(help="graph: tenant (diretório) do app")] = None,
    user_id: Annotated[
        str | None, typer.Option(help="graph: id ou UPN do usuário, se não for o endereço")
    ] = None,
    subscribe: Annotated[
        bool,
        typer.Option(
            "--subscribe",
            help="graph: notificações de mudança em PUBLIC_BASE_URL/webhooks/graph/notifications",
        ),
    ] = False,
    notification_url: Annotated[
        str | None, typer.Option(help="graph: URL pública das notificações (outra que a padrão)")
    ] = None,
    login_base_url: Annotated[str | None, typer.Option(help="graph: servidor de login")] = None,
    api_base_url: Annotated[
        str | None, typer.Option(help="gmail/graph: URL base da API (simulador local)")
    ] = None,
    default_sender: Annotated[
        bool,
        typer.Option(
            "--default-sender",
            help="gmail/graph: envia também o e-mail que não responde a esta caixa (avisos), "
            "no lugar do SMTP",
        ),
    ] = False,
    host: Annotated[str | None, typer.Option(help="imap: servidor")] = None,
    port: Annotated[int, typer.Option(help="imap: porta")] = 993,
    user: Annotated[str | None, typer.Option(help="imap: usuário")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="imap: NOME da variável com a senha")
    ] = None,
    ssl: Annotated[bool, typer.Option("--ssl/--no-ssl", help="imap: TLS")] = True,
    folder: Annotated[
        str | None, typer.Option(help="Pasta lida (imap: INBOX; graph: inbox)")
    ] = None,
) -> None:
    """Register a mailbox; the worker starts reading it at its next pass."""
    try:
        kind = MailboxProvider(provider.strip().lower())
    except ValueError:
        raise ValidationFailed(
            f"provedor desconhecido: {provider} (imap, gmail ou graph)"
        ) from None
    config: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    if kind is MailboxProvider.GMAIL:
        config = {"client_id": client_id, "topic": topic, "token_uri": token_uri,
                  "api_base_url": api_base_url}  # fmt: skip
        secrets = {
            "client_secret": client_secret_env or "",
            "refresh_token": refresh_token_env or "",
            "service_account": service_account_env or "",
        }
    elif kind is MailboxProvider.GRAPH:
        url = notification_url or (
            f"{get_settings().public_base_url.rstrip('/')}/webhooks/graph/notifications"
            if subscribe
            else None
        )
        config = {"tenant": tenant, "client_id": client_id, "user_id": user_id,
                  "folder": folder, "notification_url": url, "api_base_url": api_base_url,
                  "login_base_url": login_base_url}  # fmt: skip
        secrets = {"client_secret": client_secret_env or ""}
    else:
        config = {"host": host, "port": port, "user": user or address, "ssl": ssl,
                  "folder": folder or "INBOX"}  # fmt: skip
        secrets = {"password": password_env or ""}
    if default_sender and kind is not MailboxProvider.IMAP:
        config["default_sender"] = True
    config = {key: value for key, value in config.items() if value not in (None, "")}
    secrets = {key: value for key, value in secrets.items() if value}

    async def work() -> Mailbox:
        async with unit_of_work() as session:
            return await create_mailbox(
                session, provider=kind, name=name, address=address, config=config,
                credentials_env=secrets,
            )  # fmt: skip

    box = _run(work)
    out.print(f"caixa {box.name} ({box.provider}, {box.address}) cadastrada; id={box.id}")


@mailboxes_app.command("list")
def list_() -> None:
    """Every mailbox with its state, cursor and last error."""

    async def work() -> list[Mailbox]:
        async with unit_of_work() as session:
            return list(await get_mailboxes(session))

    rows = _run(work)
    if not rows:
        out.print("nenhuma caixa postal cadastrada")
        return
    table = Table("nome", "provedor", "endereço", "estado", "cursor", "última sync", "push até",
                  "último erro")  # fmt: skip
    for box in rows:
        table.add_row(
            box.name,
            str(box.provider),
            box.address,
            str(box.state),
            short_cursor(box.cursor),
            box.last_synced_at.strftime("%Y-%m-%d %H:%M:%S") if box.last_synced_at else "—",
            box.push_expires_at.strftime("%Y-%m-%d %H:%M") if box.push_expires_at else "—",
            (box.last_error or "")[:80],
        )
    out.print(table)


@mailboxes_app.command("sync")
def sync(
    names: Annotated[list[str] | None, typer.Argument(help="Caixas (todas se omitido)")] = None,
) -> None:
    """Sync now (also a failing or throttled mailbox); exits 1 when one failed."""

    async def work() -> list[PassResult]:
        return await sync_due(names=names or None, force=True)

    results = _run(work)
    if not results:
        out.print(
            "nenhuma caixa para sincronizar (desativada, em uso por outro worker ou inexistente)"
        )
    failed = False
    for result in results:
        if result.ok and result.stats is not None:
            s = result.stats
            out.print(
                f"{result.name}: {s.stored} novos, {s.duplicates} repetidos, {s.bounces} "
                f"devoluções{' (ressincronização completa)' if s.full_resync else ''}"
            )
        else:
            failed = True
            out.print(f"{result.name}: erro: {result.error}")
    if failed:
        raise typer.Exit(1)


@mailboxes_app.command("disable")
def disable(name: Annotated[str, typer.Argument(help="Nome da caixa")]) -> None:
    """Stop reading a mailbox (nothing is deleted)."""
    _set(name, enabled=False)


@mailboxes_app.command("enable")
def enable(name: Annotated[str, typer.Argument(help="Nome da caixa")]) -> None:
    """Read a mailbox again (from its cursor)."""
    _set(name, enabled=True)


def _set(name: str, *, enabled: bool) -> None:
    async def work() -> Mailbox:
        async with unit_of_work() as session:
            return await do_set_enabled(session, name=name, enabled=enabled)

    box = _run(work)
    out.print(f"caixa {box.name}: {box.state}")
