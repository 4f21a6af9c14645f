"""`tratativa numbers` — WhatsApp sending numbers and their providers.

    tratativa numbers add meta +5511940000001 --account-id 1234567890 --label "Marca X"
    tratativa numbers add zapi +5511940000002 --account-id <instância> --token-env ZAPI_TOKEN_X
    tratativa numbers list
    tratativa numbers default 2 | disable 2 | enable 2

Tokens never go in the table: `--token-env` names the environment variable that holds one
(default: the provider's own, e.g. META_ACCESS_TOKEN).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from api.channels.numbers.models import Provider, WhatsAppNumber
from api.channels.numbers.service import (
    create_number,
    default_provider,
    do_set_active,
    do_set_default,
    env_number,
    list_numbers,
)
from api.db import get_engine, unit_of_work

T = TypeVar("T")

numbers_app = typer.Typer(
    help="WhatsApp sending numbers and their providers.", no_args_is_help=True
)
out = Console(highlight=False)

UNOFFICIAL_WARNING = (
    "atenção: {provider} é um gateway NÃO OFICIAL (controla uma sessão do WhatsApp Web): o "
    "número pode ser banido pelo WhatsApp e não há aprovação de modelos; a janela de 24 horas "
    "continua aplicada pelo Tratativa."
)


def _run(make: Callable[[], Awaitable[T]]) -> T:
    async def work() -> T:
        try:
            return await make()
        finally:
            await get_engine().dispose()

    return asyncio.run(work())


@numbers_app.command("add")
def add(
    provider: Annotated[str, typer.Argument(help="twilio, meta, 360dialog, zapi ou ultramsg")],
    number: Annotated[str, typer.Argument(help="Nosso número, E.164 (+5511…)")],
    account_id: Annotated[
        str | None,
        typer.Option(help="Meta/360dialog: phone-number id; Z-API/UltraMsg: id da instância."),
    ] = None,
    token_env: Annotated[
        str | None, typer.Option(help="NOME da variável de ambiente com o token deste número.")
    ] = None,
    label: Annotated[str, typer.Option(help="Nome para os analistas.")] = "",
    default: Annotated[bool, typer.Option("--default", help="Número padrão.")] = False,
) -> None:
    """Register one of our WhatsApp numbers."""

    async def work() -> WhatsAppNumber:
        async with unit_of_work() as session:
            return await create_number(
                session,
                provider=provider,
                number=number,
                label=label,
                account_id=account_id,
                token_env=token_env,
                is_default=default,
            )

    row = _run(work)
    out.print(f"número {row.id} cadastrado: {row.provider} {row.number}")
    if Provider(row.provider).unofficial:
        out.print(f"[yellow]{UNOFFICIAL_WARNING.format(provider=row.provider)}[/yellow]")


@numbers_app.command("list")
def list_() -> None:
    """List our WhatsApp numbers (and the environment's single number, when none is marked
    default)."""

    async def work() -> list[WhatsAppNumber]:
        async with unit_of_work() as session:
            return await list_numbers(session)

    rows = _run(work)
    table = Table(
        "id", "provedor", "número", "conta", "token (variável)", "padrão", "ativo", "nome"
    )
    for row in rows:
        table.add_row(
            str(row.id),
            row.provider + (" (não oficial)" if Provider(row.provider).unofficial else ""),
            row.number,
            row.account_id or "",
            row.token_env or "(do provedor)",
            "sim" if row.is_default else "",
            "sim" if row.active else "não",
            row.label,
        )
    out.print(table)
    if not any(row.is_default and row.active for row in rows):
        env = env_number(default_provider())
        out.print(
            f"padrão pelo ambiente: WHATSAPP_PROVIDER={env.provider.value}"
            + (f" ({env.number})" if env.number else "")
        )


@numbers_app.command("default")
def make_default(number_id: int) -> None:
    """Make a number the default for conversations that have none."""

    async def work() -> WhatsAppNumber:
        async with unit_of_work() as session:
            return await do_set_default(session, number_id=number_id)

    row = _run(work)
    out.print(f"número {row.id} ({row.provider} {row.number}) é o padrão")


@numbers_app.command("disable")
def disable(number_id: int) -> None:
    """Stop using a number for new conversations (open ones keep answering through it)."""

    async def work() -> WhatsAppNumber:
        async with unit_of_work() as session:
            return await do_set_active(session, number_id=number_id, active=False)

    row = _run(work)
    out.print(f"número {row.id} desativado")


@numbers_app.command("enable")
def enable(number_id: int) -> None:
    """Use a disabled number again."""

    async def work() -> WhatsAppNumber:
        async with unit_of_work() as session:
            return await do_set_active(session, number_id=number_id, active=True)

    row = _run(work)
    out.print(f"número {row.id} ativado")
