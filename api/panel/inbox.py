"""The inbox: the handoff queues (waiting, mine, held by anyone), filtered by brand and channel;
the rows refresh live."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.analysts.models import Analyst
from api.conversations.models import Channel
from api.db import utcnow
from api.errors import ValidationFailed
from api.handoff.inbox import get_inbox
from api.ids import MAX_ID
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst
from api.panel.formatting import render_page

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


# Inbox tabs: URL slug → (handoff queue state, label).
TABS: dict[str, tuple[str, str]] = {
    "aguardando": ("waiting", "Aguardando"),
    "minhas": ("mine", "Minhas"),
    "em-atendimento": ("held", "Em atendimento (todas)"),
}


def _optional_int(value: str | None) -> int | None:
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError as exc:
        raise ValidationFailed(f"Valor inválido: {value!r}.") from exc
    if number is not None and not 1 <= number <= MAX_ID:
        raise ValidationFailed(f"Valor inválido: {value!r}.")
    return number


def _optional_channel(value: str | None) -> Channel | None:
    if not value:
        return None
    try:
        return Channel(value)
    except ValueError as exc:
        raise ValidationFailed(f"Canal inválido: {value!r}.") from exc


async def _inbox_context(
    session: DbSession,
    analyst: Analyst,
    *,
    aba: str,
    marca: str | None,
    canal: str | None,
    with_brands: bool,
) -> dict[str, Any]:
    tab = aba if aba in TABS else "aguardando"
    brand_id = _optional_int(marca)
    channel = _optional_channel(canal)
    view = await get_inbox(
        session,
        analyst=analyst,
        state=TABS[tab][0],
        channel=channel,
        brand_id=brand_id,
        with_brands=with_brands,
    )
    query = {"aba": tab, "marca": brand_id or "", "canal": channel.value if channel else ""}
    return {
        "items": view.items,
        "brands": view.brands,
        "channels": list(Channel),
        "tab": tab,
        "tabs": TABS,
        "brand_id": brand_id,
        "channel": channel,
        "query": urlencode(query),
        "filter_query": urlencode({k: v for k, v in query.items() if k != "aba"}),
        "now": utcnow(),
    }


@router.get("/caixa")
async def inbox(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    aba: str = "aguardando",
    marca: str | None = None,
    canal: str | None = None,
) -> HTMLResponse:
    context = await _inbox_context(
        session, analyst, aba=aba, marca=marca, canal=canal, with_brands=True
    )
    return render_page(request, "caixa.html", context, analyst=analyst)


@router.get("/caixa/linhas")
async def inbox_rows(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    aba: str = "aguardando",
    marca: str | None = None,
    canal: str | None = None,
) -> HTMLResponse:
    context = await _inbox_context(
        session, analyst, aba=aba, marca=marca, canal=canal, with_brands=False
    )
    return render_page(request, "_linhas.html", context, analyst=analyst)
