"""The analyst panel under /painel: login, inbox, conversation, case, attachments.

Server-rendered (Jinja2, autoescaped) with HTMX for the live parts. Routes stay thin: they call
the handoff, outbound, template and case services and render what those return. Every POST
carries the session's CSRF token (`auth.PanelWriter`) and answers with a redirect (PRG); errors
from the services become a pt-BR error page (see `install_panel_error_handlers`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

import nh3
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.analysts.models import Analyst, Role
from api.analysts.service import do_login
from api.brands.models import Brand
from api.cases.lifecycle import REASON_REQUIRED, CaseStatus, allowed_moves
from api.cases.models import ListingStatus
from api.cases.service import access_case, do_change_status
from api.config import get_settings
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Holder,
    Message,
)
from api.conversations.outbound import window_open_until
from api.db import utcnow
from api.errors import (
    AppError,
    AuthenticationRequired,
    NotFound,
    TooManyRequests,
    ValidationFailed,
)
from api.handoff.service import (
    access_conversation,
    analyst_actor,
    do_add_note,
    do_claim,
    do_release,
    do_resolve,
    do_send_analyst_message,
    get_handoffs,
)
from api.identifiers.money import format_brl
from api.ids import MAX_ID
from api.panel.auth import (
    PANEL_PREFIX,
    DbSession,
    PanelAnalyst,
    PanelLoginRequired,
    PanelWriter,
    check_login_csrf,
    csrf_token_of,
    do_logout,
    end_session,
    login_form_token,
    read_session,
    set_login_cookie,
    start_session,
)
from api.payments.models import InstallmentStatus, PaymentRequest
from api.storage import read_blob
from api.templates.service import (
    MessageTemplate,
    load_catalog,
    render,
    template_ref,
    variables_for_case,
)
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import get_case_timeline
from api.web.deps import client_address
from api.web.params import PathId
from api.web.security import FILE_CSP, apply_security_headers, content_disposition

PANEL_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = PANEL_DIR / "templates"
STATIC_DIR = PANEL_DIR / "static"
MAX_TEXT = 4000

# Files an analyst's browser may show inline; anything else is downloaded, never rendered on
# our origin (an HTML or SVG "attachment" would otherwise run as a page of the panel).
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "video/mp4",
        "video/3gpp",
    }
)

STATUS_LABELS: dict[CaseStatus, str] = {
    CaseStatus.DETECTADO: "Detectado",
    CaseStatus.EM_TRIAGEM: "Em triagem",
    CaseStatus.APTO_NOTIFICAR: "Apto a notificar",
    CaseStatus.NOTIFICADO: "Notificado",
    CaseStatus.SEM_RESPOSTA: "Sem resposta",
    CaseStatus.EM_ATENDIMENTO: "Em atendimento",
    CaseStatus.EM_NEGOCIACAO: "Em negociação",
    CaseStatus.EM_CONTESTACAO: "Em contestação",
    CaseStatus.DESCARTADO: "Descartado",
    CaseStatus.ESCALADO_JURIDICO: "Escalado ao jurídico",
    CaseStatus.ACORDO_PROPOSTO: "Acordo proposto",
    CaseStatus.ACORDO_ASSINADO: "Acordo assinado",
    CaseStatus.AGUARDANDO_PAGAMENTO: "Aguardando pagamento",
    CaseStatus.PAGO: "Pago",
    CaseStatus.ACORDO_DESCUMPRIDO: "Acordo descumprido",
    CaseStatus.ENCERRADO: "Encerrado",
    CaseStatus.REABERTO: "Reaberto",
}
CHANNEL_LABELS = {Channel.WHATSAPP: "WhatsApp", Channel.EMAIL: "E-mail"}
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

# Inbox tabs: URL slug → (handoff queue state, label).
TABS: dict[str, tuple[str, str]] = {
    "aguardando": ("waiting", "Aguardando"),
    "minhas": ("mine", "Minhas"),
    "em-atendimento": ("held", "Em atendimento (todas)"),
}


# --- formatting -----------------------------------------------------------------------------


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
    )
    env.filters.update(
        datetime=format_datetime,
        date=format_date,
        waited=format_waited,
        money=format_money,
        confidence=format_confidence,
        size=format_size,
        http_url=http_url,
        status_label=_label(STATUS_LABELS),
        channel_label=_label(CHANNEL_LABELS),
        holder_label=_label(HOLDER_LABELS),
        delivery_label=_label(DELIVERY_LABELS),
        listing_label=_label(LISTING_LABELS),
        installment_label=_label(INSTALLMENT_LABELS),
        role_label=_label(ROLE_LABELS),
        entry_label=_label(ENTRY_LABELS),
    )
    env.globals.update(
        PREFIX=PANEL_PREFIX, REASON_REQUIRED=REASON_REQUIRED, INLINE_TYPES=INLINE_TYPES
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


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a path inside the panel: never another host (open redirect)."""
    default = f"{PANEL_PREFIX}/caixa"
    if not value or "\\" in value or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(PANEL_PREFIX + "/"):
        return default
    return value


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


# --- e-mail HTML ----------------------------------------------------------------------------


def clean_email_html(html: str, *, message_id: int, inline_cids: frozenset[str]) -> Markup:
    """Sanitize e-mail HTML again before it reaches a page (whatever stored it, it is untrusted):
    no scripts, styles, handlers or remote images (tracking pixels); `cid:` images are served by
    the panel's authenticated inline route."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            if value.lower().startswith("cid:"):
                cid = value[4:].strip().strip("<>")
                if cid in inline_cids:
                    return f"{PANEL_PREFIX}/mensagens/{message_id}/inline/{quote(cid, safe='')}"
            return None
        return value

    cleaned: str = nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        attribute_filter=keep,
        strip_comments=True,
        link_rel="noopener noreferrer nofollow",
    )
    return Markup(cleaned)  # nh3 output: safe by construction


# --- timeline view --------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailView:
    sender: str
    to: Sequence[str]
    cc: Sequence[str]
    subject: str | None
    date: str
    html: Markup | None


@dataclass(frozen=True)
class TimelineItem:
    entry: TimelineEntry
    message: Message | None
    email: EmailView | None
    in_this_conversation: bool

    @property
    def side(self) -> str:
        if self.message is None:
            return "centro"
        return "entrada" if self.message.direction is Direction.INBOUND else "saida"

    @property
    def author(self) -> str:
        message = self.message
        if message is None:
            return self.entry.actor_name or "sistema"
        if message.author_kind is AuthorKind.INFRINGER:
            return "Infrator"
        if message.author_kind is AuthorKind.BOT:
            return "Bot"
        if message.author_kind is AuthorKind.ANALYST:
            return self.entry.actor_name or "Analista"
        return "Sistema"

    @property
    def author_class(self) -> str:
        return str(self.message.author_kind) if self.message else "sistema"

    @property
    def entities(self) -> list[tuple[str, str]]:
        if self.message is None or not self.message.entities:
            return []
        return [
            (str(e.get("entity", "?")), str(e.get("value", "")))
            for e in self.message.entities
            if isinstance(e, dict)
        ]


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value if v]
    return []


def _email_view(message: Message, conversation: Conversation | None) -> EmailView:
    meta = message.meta or {}
    inline = meta.get("inline_images")
    cids = (
        frozenset(str(k).strip("<>") for k in inline) if isinstance(inline, dict) else frozenset()
    )
    raw_html = meta.get("html_sanitized") or meta.get("html")
    html = (
        clean_email_html(raw_html, message_id=message.id, inline_cids=cids)
        if isinstance(raw_html, str) and raw_html.strip()
        else None
    )
    if message.direction is Direction.INBOUND:
        address = str(meta.get("from") or (conversation.address if conversation else ""))
        name = meta.get("from_name")
        sender = f"{name} <{address}>" if name else address
        to = _strings(meta.get("to"))
    else:
        sender = get_settings().email_from
        to = [conversation.address] if conversation else _strings(meta.get("to"))
    return EmailView(
        sender=sender,
        to=to,
        cc=_strings(meta.get("cc")),
        subject=message.subject or meta.get("original_subject"),
        date=format_datetime(meta.get("date") or message.created_at),
        html=html,
    )


async def _timeline(
    session: AsyncSession, *, conversation: Conversation, limit: int = 500
) -> list[TimelineItem]:
    """The whole case timeline (every conversation of the case), or the conversation's own
    entries while it is not linked to a case."""
    if conversation.case_id is not None:
        entries = list(await get_case_timeline(session, case_id=conversation.case_id, limit=limit))
    else:
        entries = list(
            (
                await session.scalars(
                    sa.select(TimelineEntry)
                    .where(TimelineEntry.conversation_id == conversation.id)
                    .order_by(TimelineEntry.id)
                    .limit(limit)
                )
            ).all()
        )
    message_ids = {e.message_id for e in entries if e.message_id is not None}
    messages: dict[int, Message] = {}
    conversations: dict[int, Conversation] = {conversation.id: conversation}
    if message_ids:
        rows = await session.scalars(
            sa.select(Message)
            .where(Message.id.in_(message_ids))
            .options(selectinload(Message.attachments))
        )
        messages = {m.id: m for m in rows}
        other_ids = {m.conversation_id for m in messages.values()} - set(conversations)
        if other_ids:
            for other in await session.scalars(
                sa.select(Conversation).where(Conversation.id.in_(other_ids))
            ):
                conversations[other.id] = other
    items = []
    for entry in entries:
        message = messages.get(entry.message_id) if entry.message_id is not None else None
        email = (
            _email_view(message, conversations.get(message.conversation_id))
            if message is not None and message.channel is Channel.EMAIL
            else None
        )
        owner = message.conversation_id if message is not None else entry.conversation_id
        items.append(
            TimelineItem(
                entry=entry,
                message=message,
                email=email,
                in_this_conversation=owner in (None, conversation.id),
            )
        )
    return items


# --- conversation context -------------------------------------------------------------------


@dataclass(frozen=True)
class WindowView:
    """The WhatsApp 24-hour window as the reply box shows it."""

    open: bool
    until: dt.datetime | None


def _window(conversation: Conversation) -> WindowView | None:
    if conversation.channel is not Channel.WHATSAPP:
        return None
    until = window_open_until(conversation)
    return WindowView(open=until is not None and utcnow() <= until, until=until)


def _can_write(conversation: Conversation, analyst: Analyst) -> bool:
    if conversation.closed_at is not None:
        return False
    if conversation.holder is Holder.HUMAN and conversation.analyst_id == analyst.id:
        return True
    return analyst.has_role(Role.SUPERVISOR) and conversation.holder is not Holder.BOT


async def _holder_name(session: AsyncSession, conversation: Conversation) -> str | None:
    if conversation.analyst_id is None:
        return None
    holder = await session.get(Analyst, conversation.analyst_id)
    return holder.name if holder is not None else None


def _templates_for(channel: Channel) -> list[MessageTemplate]:
    return sorted(
        (t for t in load_catalog().values() if channel in t.channels), key=lambda t: t.name
    )


async def _state_context(
    session: AsyncSession, conversation: Conversation, analyst: Analyst
) -> dict[str, Any]:
    return {
        "conversation": conversation,
        "holder_name": await _holder_name(session, conversation),
        "can_write": _can_write(conversation, analyst),
        "window": _window(conversation),
    }


# --- routes ---------------------------------------------------------------------------------

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


@router.get("")
@router.get("/")
async def panel_root() -> RedirectResponse:
    return _redirect(f"{PANEL_PREFIX}/caixa")


def _login_response(
    request: Request, *, error: str | None, email: str, next_url: str, status_code: int = 200
) -> HTMLResponse:
    token, cookie = login_form_token(request)
    response = render_page(
        request,
        "login.html",
        {"error": error, "email": email, "next": next_url, "login_csrf": token},
        analyst=None,
        status_code=status_code,
    )
    if cookie is not None:
        set_login_cookie(response, cookie)
    return response


@router.get("/login")
async def login_page(request: Request, proximo: str | None = None) -> Response:
    if read_session(request) is not None:
        return _redirect(_safe_next(proximo))
    return _login_response(request, error=None, email="", next_url=_safe_next(proximo))


@router.post("/login")
async def login_submit(
    request: Request,
    session: DbSession,
    email: Annotated[str, Form(max_length=254)] = "",
    senha: Annotated[str, Form(max_length=512)] = "",
    proximo: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    await check_login_csrf(request)
    try:
        analyst = await do_login(
            session, email=email, password=senha, address=client_address(request)
        )
    except (AuthenticationRequired, TooManyRequests) as exc:
        refused = _login_response(
            request,
            error=exc.message,
            email=email,
            next_url=_safe_next(proximo),
            status_code=exc.status_code,
        )
        if isinstance(exc, TooManyRequests):
            refused.headers["Retry-After"] = str(exc.retry_after)
        return refused
    response = _redirect(_safe_next(proximo))
    await start_session(session, response, analyst)
    return response


@router.post("/sair")
async def logout(request: Request, session: DbSession, _analyst: PanelWriter) -> RedirectResponse:
    response = _redirect(f"{PANEL_PREFIX}/login")
    await do_logout(request, session, response)
    return response


async def _inbox_context(
    session: AsyncSession, analyst: Analyst, aba: str, marca: str | None, canal: str | None
) -> dict[str, Any]:
    tab = aba if aba in TABS else "aguardando"
    brand_id = _optional_int(marca)
    channel = _optional_channel(canal)
    items = await get_handoffs(
        session, state=TABS[tab][0], analyst=analyst, channel=channel, brand_id=brand_id
    )
    query = {"aba": tab, "marca": brand_id or "", "canal": channel.value if channel else ""}
    return {
        "items": items,
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
    context = await _inbox_context(session, analyst, aba, marca, canal)
    brands = (await session.scalars(sa.select(Brand).order_by(Brand.name))).all()
    return render_page(
        request,
        "caixa.html",
        {**context, "brands": brands, "channels": list(Channel)},
        analyst=analyst,
    )


@router.get("/caixa/linhas")
async def inbox_rows(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    aba: str = "aguardando",
    marca: str | None = None,
    canal: str | None = None,
) -> HTMLResponse:
    context = await _inbox_context(session, analyst, aba, marca, canal)
    return render_page(request, "_linhas.html", context, analyst=analyst)


@router.get("/conversas/{conversation_id}")
async def conversation_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, conversation_id: PathId
) -> HTMLResponse:
    conversation = await access_conversation(session, conversation_id=conversation_id)
    case = (
        await access_case(session, case_id=conversation.case_id)
        if conversation.case_id is not None
        else None
    )
    return render_page(
        request,
        "conversa.html",
        {
            **await _state_context(session, conversation, analyst),
            "case": case,
            "items": await _timeline(session, conversation=conversation),
            "message_templates": _templates_for(conversation.channel),
            "max_text": MAX_TEXT,
            "oob": False,
        },
        analyst=analyst,
    )


@router.get("/conversas/{conversation_id}/linha-do-tempo")
async def conversation_timeline(
    request: Request, session: DbSession, analyst: PanelAnalyst, conversation_id: PathId
) -> HTMLResponse:
    """The live part of the conversation page: the timeline, plus the state bar out of band."""
    conversation = await access_conversation(session, conversation_id=conversation_id)
    return render_page(
        request,
        "_linha_do_tempo.html",
        {
            **await _state_context(session, conversation, analyst),
            "items": await _timeline(session, conversation=conversation),
            "oob": True,
        },
        analyst=analyst,
    )


def _overrides(form: Mapping[str, Any]) -> dict[str, str]:
    return {
        key.removeprefix("var_"): value.strip()
        for key, value in form.items()
        if key.startswith("var_") and isinstance(value, str) and value.strip()
    }


@router.get("/conversas/{conversation_id}/previa")
async def template_preview(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    conversation_id: PathId,
    modelo: str = "",
) -> HTMLResponse:
    """The chosen template rendered with the case's variables (plus the analyst's values for
    the ones the case lacks); a missing variable is an error, never a blank."""
    conversation = await access_conversation(session, conversation_id=conversation_id)
    context: dict[str, Any] = {
        "template": None,
        "text": None,
        "error": None,
        "missing_inputs": [],
        "values": {},
        "conversation": conversation,
    }
    if modelo:
        template = load_catalog().get(modelo)
        if template is None or conversation.channel not in template.channels:
            context["error"] = "Modelo inexistente para este canal."
        elif conversation.case_id is None:
            context["error"] = "Modelos precisam de uma conversa vinculada a um caso."
        else:
            case = await access_case(session, case_id=conversation.case_id)
            known = await variables_for_case(session, case)
            overrides = _overrides(request.query_params)
            context["template"] = template
            context["missing_inputs"] = sorted(v for v in template.variables if not known.get(v))
            context["values"] = overrides
            variables = {**known, **overrides}
            try:
                if conversation.channel is Channel.WHATSAPP:
                    context["text"] = template_ref(template, variables).rendered_text
                else:
                    context["text"] = render(template, variables)
            except AppError as exc:
                context["error"] = exc.message
    return render_page(request, "_previa.html", context, analyst=analyst)


def _back_to(conversation_id: int) -> RedirectResponse:
    return _redirect(f"{PANEL_PREFIX}/conversas/{conversation_id}")


@router.post("/conversas/{conversation_id}/assumir")
async def claim(session: DbSession, analyst: PanelWriter, conversation_id: PathId) -> Response:
    await do_claim(session, conversation_id=conversation_id, analyst=analyst)
    return _back_to(conversation_id)


@router.post("/conversas/{conversation_id}/devolver")
async def release(
    session: DbSession,
    analyst: PanelWriter,
    conversation_id: PathId,
    nota: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    await do_release(
        session, conversation_id=conversation_id, analyst=analyst, note=nota.strip() or None
    )
    return _back_to(conversation_id)


@router.post("/conversas/{conversation_id}/encerrar")
async def resolve(
    session: DbSession,
    analyst: PanelWriter,
    conversation_id: PathId,
    nota: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    await do_resolve(
        session, conversation_id=conversation_id, analyst=analyst, note=nota.strip() or None
    )
    return _back_to(conversation_id)


@router.post("/conversas/{conversation_id}/notas")
async def add_conversation_note(
    session: DbSession,
    analyst: PanelWriter,
    conversation_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    conversation = await access_conversation(session, conversation_id=conversation_id)
    await do_add_note(session, analyst=analyst, text=texto, conversation=conversation)
    return _back_to(conversation_id)


@router.post("/conversas/{conversation_id}/mensagens")
async def send_message(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    conversation_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
    modelo: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Free text or a template, on the conversation's own channel, through the outbox."""
    await do_send_analyst_message(
        session,
        conversation_id=conversation_id,
        analyst=analyst,
        text=texto,
        template=modelo or None,
        variables=_overrides(await request.form()) if modelo else None,
    )
    return _back_to(conversation_id)


@router.get("/casos/{case_id}")
async def case_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, case_id: PathId
) -> HTMLResponse:
    case = await access_case(session, case_id=case_id)
    payments = (
        await session.scalars(
            sa.select(PaymentRequest)
            .where(PaymentRequest.case_id == case.id)
            .order_by(PaymentRequest.id.desc())
        )
    ).all()
    conversations = (
        await session.scalars(
            sa.select(Conversation).where(Conversation.case_id == case.id).order_by(Conversation.id)
        )
    ).all()
    entries = await get_case_timeline(session, case_id=case.id)
    return render_page(
        request,
        "caso.html",
        {
            "case": case,
            "moves": sorted(allowed_moves(case.status), key=list(CaseStatus).index),
            "payments": payments,
            "conversations": conversations,
            "entries": list(entries)[-100:],
            "public_base_url": get_settings().public_base_url.rstrip("/"),
        },
        analyst=analyst,
    )


@router.post("/casos/{case_id}/status")
async def change_case_status(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    status: Annotated[str, Form(max_length=40)],
    motivo: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        target = CaseStatus(status)
    except ValueError as exc:
        raise ValidationFailed(f"Status desconhecido: {status!r}.") from exc
    case = await access_case(session, case_id=case_id)
    await do_change_status(
        session,
        case=case,
        target=target,
        actor=analyst_actor(analyst),
        reason=motivo.strip() or None,
    )
    return _redirect(f"{PANEL_PREFIX}/casos/{case_id}")


@router.post("/casos/{case_id}/notas")
async def add_case_note(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    case = await access_case(session, case_id=case_id)
    await do_add_note(session, analyst=analyst, text=texto, case=case)
    return _redirect(f"{PANEL_PREFIX}/casos/{case_id}")


# --- files ----------------------------------------------------------------------------------


async def _file_response(attachment: Attachment) -> Response:
    if attachment.storage_path is None:
        reason = attachment.refused_reason or "arquivo não armazenado"
        raise NotFound(f"Este anexo não está disponível: {reason}.")
    try:
        data = await asyncio.to_thread(read_blob, attachment.storage_path)
    except (OSError, ValueError) as exc:
        raise NotFound("O arquivo deste anexo não foi encontrado no armazenamento.") from exc
    content_type = attachment.content_type.split(";")[0].strip().lower()
    inline = content_type in INLINE_TYPES
    return Response(
        data,
        media_type=content_type or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(
                "inline" if inline else "attachment", attachment.filename
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/anexos/{attachment_id}")
async def attachment_file(
    session: DbSession, _analyst: PanelAnalyst, attachment_id: PathId
) -> Response:
    attachment = await session.get(Attachment, attachment_id)
    if attachment is None:
        raise NotFound(f"Anexo {attachment_id} não encontrado.")
    return await _file_response(attachment)


@router.get("/mensagens/{message_id}/inline/{cid:path}")
async def inline_image(
    session: DbSession, _analyst: PanelAnalyst, message_id: PathId, cid: str
) -> Response:
    """An image an e-mail shows inline (`<img src="cid:…">`), by its Content-ID."""
    message = await session.get(Message, message_id)
    inline = (message.meta or {}).get("inline_images") if message is not None else None
    digest = None
    if isinstance(inline, dict):
        digest = inline.get(cid) or inline.get(f"<{cid}>")
    attachment = (
        await session.scalar(
            sa.select(Attachment)
            .where(Attachment.message_id == message_id, Attachment.sha256 == str(digest))
            .limit(1)
        )
        if digest
        else None
    )
    if attachment is None or attachment.content_type not in INLINE_TYPES:
        raise NotFound("Imagem não encontrada.")
    return await _file_response(attachment)


# --- errors ---------------------------------------------------------------------------------

ERROR_TITLES = {
    400: "Requisição inválida",
    401: "Entre no painel",
    403: "Acesso negado",
    404: "Não encontrado",
    405: "Operação não permitida",
    409: "Não foi possível concluir",
    422: "Não foi possível concluir",
    500: "Erro interno",
    502: "Falha no provedor",
}
_BACK_RE = re.compile(rf"^{PANEL_PREFIX}/(conversas|casos)/\d+")

Handler = Callable[[Request, Any], Awaitable[Response] | Response]


def _is_panel(request: Request) -> bool:
    path = request.url.path
    return path == PANEL_PREFIX or path.startswith(PANEL_PREFIX + "/")


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    """A pt-BR page for an error on a panel route, with a way back to where the analyst was."""
    match = _BACK_RE.match(request.url.path)
    back = match.group(0) if match else f"{PANEL_PREFIX}/caixa"
    return render_page(
        request,
        "erro.html",
        {
            "title": ERROR_TITLES.get(status_code, "Não foi possível concluir"),
            "message": message,
            "back": back,
            "status_code": status_code,
        },
        analyst=None,
        status_code=status_code,
    )


def _login_redirect(request: Request) -> Response:
    target = f"{PANEL_PREFIX}/login"
    if request.method == "GET" and request.url.path not in (f"{PANEL_PREFIX}/events",):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?" + urlencode({"proximo": path})
    response: Response
    if request.headers.get("HX-Request"):
        # An HTMX fragment request: tell htmx to load the login page instead of a fragment.
        response = Response(status_code=204, headers={"HX-Redirect": target})
    else:
        response = RedirectResponse(target, status_code=303)
    # A signed cookie of a deactivated or deleted analyst must not bounce between the login
    # page and the panel.
    end_session(response)
    return response


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    result = handler(request, exc)
    if inspect.isawaitable(result):
        return await result
    return result


def install_panel_error_handlers(app: FastAPI) -> None:
    """Panel routes answer errors with pages (pt-BR), everything else keeps the JSON handlers.
    Call after `api.web.errors.install_error_handlers` (it wraps the handlers found there)."""
    previous_app_error: Handler | None = app.exception_handlers.get(AppError)
    previous_invalid: Handler | None = app.exception_handlers.get(RequestValidationError)
    previous_http: Handler | None = app.exception_handlers.get(StarletteHTTPException)
    previous_unexpected: Handler | None = app.exception_handlers.get(Exception)

    async def app_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, PanelLoginRequired):
            return _login_redirect(request)
        if _is_panel(request) and isinstance(exc, AppError):
            return error_page(request, exc.status_code, exc.message)
        if previous_app_error is None:
            raise exc
        return await _call(previous_app_error, request, exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        if _is_panel(request):
            return error_page(request, 422, "Dados do formulário inválidos ou incompletos.")
        if previous_invalid is None:
            raise exc
        return await _call(previous_invalid, request, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        if _is_panel(request) and isinstance(exc, StarletteHTTPException):
            messages = {404: "Página não encontrada.", 405: "Operação não permitida aqui."}
            return error_page(
                request, exc.status_code, messages.get(exc.status_code, "Requisição inválida.")
            )
        if previous_http is None:
            raise exc
        return await _call(previous_http, request, exc)

    async def unexpected(request: Request, exc: Exception) -> Response:
        if _is_panel(request):
            if previous_unexpected is not None:
                await _call(previous_unexpected, request, exc)  # logs it
            return error_page(request, 500, "Erro interno. Tente de novo em instantes.")
        if previous_unexpected is None:
            raise exc
        return await _call(previous_unexpected, request, exc)

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
