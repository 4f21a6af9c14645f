"""The work behind `tratativa outreach` (imported when a command runs, so other commands start
without loading the service's modules)."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Coroutine
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

import api.channels
import api.models  # noqa: F401  (all mappers configured)
from api.analysts.service import require_analyst_by_email
from api.brands.service import get_brand_by_name
from api.cases.lifecycle import CaseStatus
from api.cases.service import get_case_by_reference
from api.config import get_settings
from api.db import get_engine, unit_of_work
from api.errors import AppError, NotFound, ValidationFailed
from api.handoff.service import analyst_actor
from api.outreach.models import ItemState
from api.outreach.service import (
    RATE_WINDOW,
    Preview,
    do_create_batch,
    do_record_opt_in,
    get_case_ids,
    get_previews,
    parse_channel,
    run_due_outreach,
)
from api.outreach.views import BatchProgress, ItemReport, get_batch_progress, get_batch_report
from api.timeline.service import Actor

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

STATE_PT = {
    ItemState.SENT: "enviado",
    ItemState.SKIPPED: "pulado",
    ItemState.FAILED: "falhou",
    ItemState.PENDING: "na fila",
}


def _run(work: Coroutine[Any, Any, None]) -> None:
    async def main() -> None:
        try:
            await work
        finally:
            await get_engine().dispose()

    try:
        asyncio.run(main())
    except AppError as exc:
        err.print(f"erro: {exc.message}")
        raise typer.Exit(1) from exc


def _local(moment: dt.datetime | None) -> str:
    if moment is None:
        return "—"
    zone = ZoneInfo(get_settings().business_timezone)
    return moment.astimezone(zone).strftime("%d/%m/%Y %H:%M")


def _parse_at(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"data e hora inválida: {value!r} (ISO 8601)") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(get_settings().business_timezone))
    return moment.astimezone(dt.UTC)


async def _selection(
    refs: list[str], brand: str | None, status: str | None
) -> tuple[list[int], dict[str, object]]:
    async with unit_of_work() as session:
        if refs:
            if brand or status:
                raise ValidationFailed("Use --case ou --brand/--status, não os dois.")
            ids = []
            for ref in refs:
                case = await get_case_by_reference(session, reference=ref.strip())
                if case is None:
                    raise NotFound(f"Caso {ref} não encontrado.")
                ids.append(case.id)
            return ids, {"case_refs": [r.strip().upper() for r in refs]}
        brand_id = None
        if brand:
            found = await get_brand_by_name(session, name=brand)
            if found is None:
                raise NotFound(f"Marca {brand!r} não encontrada.")
            brand_id = found.id
        case_status = None
        if status:
            try:
                case_status = CaseStatus(status.strip().upper())
            except ValueError as exc:
                raise ValidationFailed(f"Status desconhecido: {status!r}.") from exc
        ids = await get_case_ids(session, brand_id=brand_id, status=case_status)
        return ids, {"brand": brand, "status": case_status and str(case_status)}


def _print_previews(previews: list[Preview]) -> None:
    table = Table("caso", "resultado", "endereço / motivo")
    for p in previews:
        table.add_row(
            p.case_reference,
            "seria enviado" if p.would_send else "seria pulado",
            p.address or f"{p.reason}: {p.detail}",
        )
    out.print(table)
    sending = sum(p.would_send for p in previews)
    out.print(f"simulação: {sending} seriam enviados, {len(previews) - sending} pulados")


def _print_report(progress: BatchProgress, items: list[ItemReport]) -> None:
    table = Table("caso", "situação", "endereço / motivo")
    for item in items:
        if item.state is ItemState.SENT:
            where = item.address or ""
        elif item.state is ItemState.PENDING:
            where = f"a partir de {_local(item.not_before)}"
        else:
            where = f"{item.reason}: {item.detail}"
        table.add_row(item.case_reference, STATE_PT[item.state], where)
    out.print(table)
    out.print(
        f"lote #{progress.id}: enviados {progress.sent}, pulados {progress.skipped}, "
        f"falhas {progress.failed}, na fila {progress.pending} (de {progress.total})"
    )


async def _send(
    refs: list[str],
    brand: str | None,
    status: str | None,
    channel_name: str,
    dry_run: bool,
    analyst_email: str | None,
    at: dt.datetime | None,
    wait: bool,
) -> None:
    channel = parse_channel(channel_name)
    case_ids, selection = await _selection(refs, brand, status)
    if not case_ids:
        raise NotFound("Nenhum caso nessa seleção.")
    if dry_run:
        async with unit_of_work() as session:
            _print_previews(await get_previews(session, case_ids=case_ids, channel=channel))
        return
    async with unit_of_work() as session:
        actor = Actor.system()
        if analyst_email:
            actor = analyst_actor(await require_analyst_by_email(session, email=analyst_email))
        batch = await do_create_batch(
            session, case_ids=case_ids, channel=channel, actor=actor, selection=selection, now=at
        )
        batch_id, total = batch.id, batch.total
    err.print(f"lote #{batch_id}: {total} caso(s), canal {channel}")
    with Progress(
        TextColumn("enviando"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        disable=not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("notices", total=total)
        while True:
            result = await run_due_outreach(now=at, batch_id=batch_id)
            async with unit_of_work() as session:
                progress = await get_batch_progress(session, batch_id=batch_id)
            assert progress is not None
            bar.update(task, completed=progress.processed)
            if progress.pending == 0:
                break
            if result.closed:
                err.print(
                    "fora do horário comercial: os casos restantes ficam na fila e o worker "
                    f"envia a partir de {_local(result.next_open)}"
                )
                break
            if not wait or at is not None:
                err.print("o worker envia o restante (limite de envios por minuto)")
                break
            if result.rate_limited:
                # The channel's limit per minute: wait for the window to move on.
                await asyncio.sleep(RATE_WINDOW.total_seconds() / 6)
            elif result.processed == 0:
                break
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
        items = await get_batch_report(session, batch_id=batch_id)
    assert progress is not None
    _print_report(progress, items)


def send(
    refs: list[str],
    brand: str | None,
    status: str | None,
    channel: str,
    dry_run: bool,
    analyst: str | None,
    at: str | None,
    wait: bool,
) -> None:
    _run(_send(refs, brand, status, channel, dry_run, analyst, _parse_at(at), wait))


def show_status(batch_id: int) -> None:
    async def work() -> None:
        async with unit_of_work() as session:
            progress = await get_batch_progress(session, batch_id=batch_id)
            if progress is None:
                raise NotFound(f"Lote {batch_id} não encontrado.")
            items = await get_batch_report(session, batch_id=batch_id)
        _print_report(progress, items)

    _run(work())


def record_opt_in(phone: str, source: str) -> None:
    async def work() -> None:
        async with unit_of_work() as session:
            opt_in = await do_record_opt_in(session, phone=phone, source=source, analyst_id=None)
            contact_id = opt_in.contact_point_id
        out.print(f"opt-in registrado para o contato {contact_id}")

    _run(work())
