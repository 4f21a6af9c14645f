"""`tratativa outreach` — send the extrajudicial notice to one case or a selection.

    tratativa outreach send --case INF-2026-000123 [--case …] [--channel email|whatsapp]
    tratativa outreach send --brand Acme --status APTO_NOTIFICAR [--dry-run]
    tratativa outreach status 12
    tratativa outreach opt-in +5511987654321 --source "formulário do site"

`send` creates a batch and sends it here, with a progress bar, as business hours and the
channel's rate limit allow (the worker sends whatever is left: outside business hours the batch
waits for the next opening); then prints one line per case: sent to which address, or skipped
and why. The messages themselves leave through the outbox (the worker delivers them).
"""

from __future__ import annotations

from typing import Annotated

import typer

outreach_app = typer.Typer(help="Extrajudicial notices and bulk sends.", no_args_is_help=True)


@outreach_app.command("send")
def send(
    case: Annotated[
        list[str] | None, typer.Option("--case", help="Referência do caso (repetível).")
    ] = None,
    brand: Annotated[str | None, typer.Option(help="Todos os casos desta marca…")] = None,
    status: Annotated[
        str | None, typer.Option(help="…e/ou neste status (ex.: APTO_NOTIFICAR).")
    ] = None,
    channel: Annotated[str, typer.Option(help="email ou whatsapp.")] = "email",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Só mostra o que seria enviado ou pulado.")
    ] = False,
    analyst: Annotated[
        str | None,
        typer.Option("--analyst", help="E-mail do analista que assina (padrão: o sistema)."),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="Avalia como se fosse este momento (ISO 8601), para testes."),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Aguardar o limite de envios por minuto.")
    ] = True,
) -> None:
    """Send the extrajudicial notice to cases (by reference, or by brand and/or status)."""
    if not case and not brand and not status:
        typer.echo("erro: informe --case, ou --brand e/ou --status", err=True)
        raise typer.Exit(2)
    from api.cli import outreach_run

    outreach_run.send(case or [], brand, status, channel, dry_run, analyst, at, wait)


@outreach_app.command("status")
def status(batch_id: Annotated[int, typer.Argument(min=1)]) -> None:
    """Progress and per-case report of a batch."""
    from api.cli import outreach_run

    outreach_run.show_status(batch_id)


@outreach_app.command("opt-in")
def opt_in(
    phone: Annotated[str, typer.Argument(help="Telefone do infrator (E.164 ou nacional).")],
    source: Annotated[str, typer.Option(help="Origem do consentimento.")],
) -> None:
    """Record that a phone agreed to receive WhatsApp messages from us."""
    from api.cli import outreach_run

    outreach_run.record_opt_in(phone, source)
