"""The analyst panel's pages under /painel: login, inbox, conversation, case.

Server-rendered (Jinja2, autoescaped) with HTMX for the live parts. Routes stay thin: they read
through the read models (api/handoff/inbox.py, api/conversations/views.py, api/cases/views.py),
change state through the handoff, template and case services, and render what those return; no
SQL here (tests/unit/test_panel_layout.py holds that). Every POST carries the session's CSRF
token (`auth.PanelWriter`) and answers with a redirect (PRG); errors from the services become a
pt-BR error page (api/panel/errors.py). Files are api/panel/files.py's, formatting is
api/panel/formatting.py's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.analysts.models import Analyst
from api.analysts.service import do_login
from api.cases.lifecycle import CaseStatus
from api.cases.service import do_change_status, require_case
from api.cases.views import get_case_view
from api.config import get_settings
from api.conversations.models import Channel
from api.conversations.views import ConversationView, get_conversation_view
from api.db import utcnow
from api.errors import AppError, AuthenticationRequired, TooManyRequests, ValidationFailed
from api.handoff.inbox import get_inbox
from api.handoff.service import (
    analyst_actor,
    do_add_note,
    do_claim,
    do_release,
    do_resolve,
    do_send_analyst_message,
    require_conversation,
)
from api.ids import MAX_ID
from api.panel.auth import (
    PANEL_PREFIX,
    DbSession,
    PanelAnalyst,
    PanelWriter,
    check_login_csrf,
    do_logout,
    login_form_token,
    read_session,
    set_login_cookie,
    start_session,
)
from api.panel.formatting import redirect, render_page
from api.panel.views import timeline_items
from api.templates.service import (
    MessageTemplate,
    load_catalog,
    render,
    template_ref,
    variables_for_case,
)
from api.web.deps import client_address
from api.web.params import PathId

MAX_TEXT = 4000

# Inbox tabs: URL slug → (handoff queue state, label).
TABS: dict[str, tuple[str, str]] = {
    "aguardando": ("waiting", "Aguardando"),
    "minhas": ("mine", "Minhas"),
    "em-atendimento": ("held", "Em atendimento (todas)"),
}

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


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


# --- login ----------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def panel_root() -> RedirectResponse:
    return redirect(f"{PANEL_PREFIX}/caixa")


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
        return redirect(_safe_next(proximo))
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
    response = redirect(_safe_next(proximo))
    await start_session(session, response, analyst)
    return response


@router.post("/sair")
async def logout(request: Request, session: DbSession, _analyst: PanelWriter) -> RedirectResponse:
    response = redirect(f"{PANEL_PREFIX}/login")
    await do_logout(request, session, response)
    return response


# --- inbox ----------------------------------------------------------------------------------


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


# --- conversation ---------------------------------------------------------------------------


def _templates_for(channel: Channel) -> list[MessageTemplate]:
    return sorted(
        (t for t in load_catalog().values() if channel in t.channels), key=lambda t: t.name
    )


def _state_context(view: ConversationView) -> dict[str, Any]:
    return {
        "conversation": view.conversation,
        "holder_name": view.holder_name,
        "can_write": view.can_write,
        "window": view.window,
        "items": timeline_items(view.timeline),
    }


@router.get("/conversas/{conversation_id}")
async def conversation_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, conversation_id: PathId
) -> HTMLResponse:
    view = await get_conversation_view(session, conversation_id=conversation_id, analyst=analyst)
    return render_page(
        request,
        "conversa.html",
        {
            **_state_context(view),
            "case": view.case,
            "message_templates": _templates_for(view.conversation.channel),
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
    view = await get_conversation_view(
        session, conversation_id=conversation_id, analyst=analyst, with_case=False
    )
    return render_page(
        request, "_linha_do_tempo.html", {**_state_context(view), "oob": True}, analyst=analyst
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
    conversation = await require_conversation(session, conversation_id=conversation_id)
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
            case = await require_case(session, case_id=conversation.case_id)
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
    return redirect(f"{PANEL_PREFIX}/conversas/{conversation_id}")


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
    conversation = await require_conversation(session, conversation_id=conversation_id)
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


# --- case -----------------------------------------------------------------------------------


@router.get("/casos/{case_id}")
async def case_page(
    request: Request, session: DbSession, analyst: PanelAnalyst, case_id: PathId
) -> HTMLResponse:
    view = await get_case_view(session, case_id=case_id)
    return render_page(
        request,
        "caso.html",
        {
            "case": view.case,
            "moves": view.moves,
            "payments": view.payments,
            "conversations": view.conversations,
            "entries": view.entries,
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
    case = await require_case(session, case_id=case_id)
    await do_change_status(
        session,
        case=case,
        target=target,
        actor=analyst_actor(analyst),
        reason=motivo.strip() or None,
    )
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")


@router.post("/casos/{case_id}/notas")
async def add_case_note(
    session: DbSession,
    analyst: PanelWriter,
    case_id: PathId,
    texto: Annotated[str, Form(max_length=MAX_TEXT)] = "",
) -> Response:
    case = await require_case(session, case_id=case_id)
    await do_add_note(session, analyst=analyst, text=texto, case=case)
    return redirect(f"{PANEL_PREFIX}/casos/{case_id}")
