"""The conversation page: the timeline (live), the state bar, template previews and the
analyst's actions (claim, release, resolve, note, reply) through the handoff services."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.cases.service import require_case
from api.conversations.models import Channel
from api.conversations.uploads import UPLOAD_TYPES, UploadRefused, check_upload, max_upload_bytes
from api.conversations.views import ConversationView, get_conversation_view
from api.errors import AppError
from api.handoff.service import (
    do_add_note,
    do_claim,
    do_release,
    do_resolve,
    do_send_analyst_message,
    require_conversation,
)
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import MAX_TEXT, redirect, render_page
from api.panel.views import timeline_items
from api.templates.service import (
    MessageTemplate,
    load_templates,
    render_for_conversation,
    variables_for_case,
)
from api.web.params import PathId

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


async def _templates_for(session: DbSession, channel: Channel) -> list[MessageTemplate]:
    return sorted(
        (t for t in (await load_templates(session)).values() if channel in t.channels),
        key=lambda t: t.name,
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
            "message_templates": await _templates_for(session, view.conversation.channel),
            "max_text": MAX_TEXT,
            "upload_types": UPLOAD_TYPES,
            "max_upload_bytes": max_upload_bytes(),
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
        template = (await load_templates(session)).get(modelo)
        if template is None or conversation.channel not in template.channels:
            context["error"] = "Modelo inexistente para este canal."
        elif conversation.case_id is None:
            context["error"] = "Modelos precisam de uma conversa vinculada a um caso."
        else:
            case = await require_case(session, case_id=conversation.case_id)
            known = await variables_for_case(session, case, analyst_name=analyst.name)
            overrides = _overrides(request.query_params)
            context["template"] = template
            context["missing_inputs"] = sorted(v for v in template.variables if not known.get(v))
            context["values"] = overrides
            variables = {**known, **overrides}
            try:
                context["text"] = render_for_conversation(conversation, template, variables)
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
    anexo: Annotated[UploadFile | None, File()] = None,
) -> Response:
    """Free text (with an optional file) or a template, on the conversation's own channel,
    through the outbox. A refused file says why and nothing is sent."""
    attachments = []
    if anexo is not None and anexo.filename:
        data = await anexo.read(max_upload_bytes() + 1)
        try:
            attachments.append(check_upload(anexo.filename, data))
        except UploadRefused as exc:
            raise UploadRefused(f"Anexo recusado: {exc.message}") from exc
    await do_send_analyst_message(
        session,
        conversation_id=conversation_id,
        analyst=analyst,
        text=texto,
        template=modelo or None,
        variables=_overrides(await request.form()) if modelo else None,
        attachments=attachments,
    )
    return _back_to(conversation_id)
