"""How the panel shows values: pt-BR labels for codes, dates in the business time zone, money,
sizes, safe links; the Jinja2 environment (autoescaped) and `render_page`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from api.analysts.models import Analyst, Role
from api.cases.lifecycle import REASON_REQUIRED, STATUS_LABELS, status_label
from api.cases.models import ListingStatus
from api.config import get_settings
from api.conversations.models import Channel, DeliveryStatus, Holder
from api.conversations.outbound import channel_label
from api.identifiers.money import format_brl
from api.panel.auth import PANEL_PREFIX, csrf_token_of
from api.panel.files import INLINE_TYPES
from api.panel.nav import NAV
from api.payments.models import InstallmentStatus
from api.timeline.models import EntryKind, TimelineEntry
from api.web.security import apply_security_headers

PANEL_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PANEL_DIR / "templates"
STATIC_DIR = PANEL_DIR / "static"
# The longest note or reply an analyst may write.
MAX_TEXT = 4000

HOLDER_LABELS = {
    Holder.BOT: "Com o bot",
    Holder.WAITING_HUMAN: "Aguardando analista",
    Holder.HUMAN: "Com analista",
}
DELIVERY_LABELS = {
    DeliveryStatus.RECEIVED: "recebida",
    DeliveryStatus.PENDING: "na fila de envio",
    DeliveryStatus.QUEUED: "aceita pelo provedor",
    DeliveryStatus.SENDING: "enviando",
    DeliveryStatus.SENT: "enviada",
    DeliveryStatus.DELIVERED: "entregue",
    DeliveryStatus.READ: "lida",
    DeliveryStatus.FAILED: "falhou",
    DeliveryStatus.UNDELIVERED: "não entregue",
}
LISTING_LABELS = {
    ListingStatus.ACTIVE: "Ativo",
    ListingStatus.REMOVAL_PENDING: "Remoção informada (a verificar)",
    ListingStatus.REMOVED: "Removido",
    ListingStatus.RELISTED: "Republicado",
}
INSTALLMENT_LABELS = {
    InstallmentStatus.OPEN: "Em aberto",
    InstallmentStatus.PAID: "Paga",
    InstallmentStatus.OVERDUE: "Vencida",
    InstallmentStatus.CANCELLED: "Cancelada",
}
ROLE_LABELS = {Role.ANALYST: "analista", Role.SUPERVISOR: "supervisor(a)", Role.ADMIN: "admin"}
ENTRY_LABELS = {
    EntryKind.MESSAGE: "Mensagem",
    EntryKind.STATUS_CHANGE: "Status do caso",
    EntryKind.HANDOFF: "Atendimento",
    EntryKind.NOTE: "Nota interna",
    EntryKind.ALERT: "Alerta",
    EntryKind.LISTING: "Anúncio",
    EntryKind.DELIVERY: "Entrega",
    EntryKind.SYSTEM: "Sistema",
}


def _zone() -> ZoneInfo:
    return ZoneInfo(get_settings().business_timezone)


def format_datetime(value: dt.datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
        value = parsed
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(_zone()).strftime("%d/%m/%Y %H:%M")


def format_date(value: dt.date | None) -> str:
    return value.strftime("%d/%m/%Y") if value is not None else "—"


def format_waited(seconds: int) -> str:
    """A waiting time as an analyst reads it: "menos de 1 min", "42 min", "3 h 05 min", "2 dias"."""
    minutes = max(seconds, 0) // 60
    if minutes < 1:
        return "menos de 1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {rest:02d} min"
    days = hours // 24
    return "1 dia" if days == 1 else f"{days} dias"


def format_money(value: Decimal | None) -> str:
    return format_brl(value) if value is not None else "—"


def format_confidence(value: float | None) -> str:
    return f"{round(value * 100)}%" if value is not None else "—"


def format_size(size: int | None) -> str:
    if not size:
        return "0 KB"
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


def http_url(value: str | None) -> str | None:
    """The URL when it is http(s); anything else (javascript:, data:) is shown as text only."""
    if value and urlsplit(value.strip()).scheme.lower() in ("http", "https"):
        return value.strip()
    return None


def entry_summary(entry: TimelineEntry) -> str:
    """The line a timeline entry shows. A status change is rebuilt from its data with the plain
    labels ("Em atendimento → Em negociação"), whatever codes older rows wrote in the summary."""
    data = entry.data or {}
    if entry.kind is EntryKind.STATUS_CHANGE and data.get("from") and data.get("to"):
        reason = data.get("reason")
        return f"Status: {status_label(data['from'])} → {status_label(data['to'])}" + (
            f" ({reason})" if reason else ""
        )
    return entry.summary


def label_of_channel(value: Any) -> str:
    """The channel's own name for it (its composer's label); a value that is no channel as is."""
    try:
        return channel_label(Channel(value))
    except ValueError:
        return str(value) if value is not None else "—"


def _label(mapping: Mapping[Any, str]) -> Callable[[Any], str]:
    def label(value: Any) -> str:
        return mapping.get(value, str(value) if value is not None else "—")

    return label


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        # Templates ship with the code: no stat() of the template files on every render
        # (restart the service after editing one).
        auto_reload=False,
    )
    env.filters.update(
        datetime=format_datetime,
        date=format_date,
        waited=format_waited,
        money=format_money,
        confidence=format_confidence,
        size=format_size,
        http_url=http_url,
        entry_summary=entry_summary,
        status_label=_label(STATUS_LABELS),
        channel_label=label_of_channel,
        holder_label=_label(HOLDER_LABELS),
        delivery_label=_label(DELIVERY_LABELS),
        listing_label=_label(LISTING_LABELS),
        installment_label=_label(INSTALLMENT_LABELS),
        role_label=_label(ROLE_LABELS),
        entry_label=_label(ENTRY_LABELS),
    )
    env.globals.update(
        PREFIX=PANEL_PREFIX,
        REASON_REQUIRED=REASON_REQUIRED,
        INLINE_TYPES=INLINE_TYPES,
        NAV=NAV,
    )
    return env


templates = _environment()


def render_page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    analyst: Analyst | None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render a template with what every page needs (analyst, CSRF token) and safe headers."""
    html = templates.get_template(name).render(
        {"request": request, "analyst": analyst, "csrf_token": csrf_token_of(request), **context}
    )
    response = HTMLResponse(html, status_code=status_code)
    apply_security_headers(response)
    return response


def redirect(url: str) -> RedirectResponse:
    """See other (PRG): every panel POST answers with one."""
    return RedirectResponse(url, status_code=303)
