"""Message templates: admins and supervisors create and edit them (every save a new version,
kept), with a preview on a real case; an unknown variable is refused on save with the form
kept as typed."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response

from api.analysts.models import Analyst, Role
from api.cases.service import get_case_by_reference
from api.conversations.models import Channel
from api.errors import AppError, ValidationFailed
from api.identifiers.case_ref import parse_case_ref
from api.identifiers.errors import InvalidIdentifier
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst, PanelWriter
from api.panel.formatting import redirect, render_page
from api.panel.nav import NavItem, add_nav
from api.templates.service import MessageTemplate, render, variables_for_case
from api.templates.store import (
    VARIABLES,
    TemplateDraft,
    body_variables,
    check_can_manage_templates,
    current_version,
    do_save_template,
    do_set_template_active,
    get_stored_template,
    get_template_summaries,
    require_stored_template,
)

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)
add_nav(NavItem("Modelos", "/modelos", frozenset({Role.SUPERVISOR, Role.ADMIN}), 40))


def _form(draft: TemplateDraft | None = None, *, is_new: bool) -> dict[str, Any]:
    return {
        "draft": draft
        or TemplateDraft(
            name="", description="", channels=(), body="", whatsapp_variables=(), content_sid=None
        ),
        "is_new": is_new,
        "variables": VARIABLES,
        "channels": list(Channel),
        "error": None,
        "versions": [],
        "template": None,
    }


@router.get("/modelos")
async def templates_list(
    request: Request, session: DbSession, analyst: PanelAnalyst
) -> HTMLResponse:
    check_can_manage_templates(analyst)
    return render_page(
        request,
        "modelos.html",
        {"summaries": await get_template_summaries(session)},
        analyst=analyst,
    )


@router.get("/modelos/novo")
async def new_template(request: Request, analyst: PanelAnalyst) -> HTMLResponse:
    check_can_manage_templates(analyst)
    return render_page(request, "modelo_form.html", _form(is_new=True), analyst=analyst)


@router.get("/modelos/previa")
async def template_preview(
    request: Request,
    session: DbSession,
    analyst: PanelAnalyst,
    corpo: str = "",
    caso: str = "",
) -> HTMLResponse:
    """The body as typed, rendered with a real case's data (by reference)."""
    check_can_manage_templates(analyst)
    context: dict[str, Any] = {"text": None, "error": None, "case": None}
    try:
        used = body_variables(corpo[:4000])
        unknown = sorted(used - set(VARIABLES))
        if unknown:
            raise ValidationFailed(f"Variável desconhecida: {', '.join(unknown)}.")
        if not caso.strip():
            raise ValidationFailed("Informe a referência de um caso para ver a prévia.")
        try:
            reference = parse_case_ref(caso)
        except InvalidIdentifier as exc:
            raise ValidationFailed(f"Referência inválida: {caso.strip()!r}.") from exc
        case = await get_case_by_reference(session, reference=reference)
        if case is None:
            raise ValidationFailed(f"Nenhum caso com a referência {reference}.")
        context["case"] = case
        values = await variables_for_case(session, case, analyst_name=analyst.name)
        context["text"] = render(
            MessageTemplate(
                name="previa",
                description="",
                channels=frozenset(Channel),
                body=" ".join(corpo.split()),
                whatsapp_variables=(),
                content_sid=None,
            ),
            values,
        )
    except AppError as exc:
        context["error"] = exc.message
    return render_page(request, "_modelo_previa.html", context, analyst=analyst)


@router.get("/modelos/{name}")
async def edit_template(
    request: Request, session: DbSession, analyst: PanelAnalyst, name: str
) -> HTMLResponse:
    check_can_manage_templates(analyst)
    template = await require_stored_template(session, name=name[:64])
    version = current_version(template)
    context = _form(
        TemplateDraft(
            name=template.name,
            description=version.description,
            channels=tuple(version.channels),
            body=version.body,
            whatsapp_variables=tuple(version.whatsapp_variables),
            content_sid=version.content_sid,
        ),
        is_new=False,
    )
    context["versions"] = list(reversed(template.versions))
    context["template"] = template
    return render_page(request, "modelo_form.html", context, analyst=analyst)


@router.post("/modelos")
async def save_template(
    request: Request,
    session: DbSession,
    analyst: PanelWriter,
    nome: Annotated[str, Form(max_length=64)] = "",
    descricao: Annotated[str, Form(max_length=300)] = "",
    corpo: Annotated[str, Form(max_length=4000)] = "",
    ordem_whatsapp: Annotated[str, Form(max_length=500)] = "",
    content_sid: Annotated[str, Form(max_length=64)] = "",
    novo: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    check_can_manage_templates(analyst)
    form = await request.form()
    draft = TemplateDraft(
        name=nome,
        description=descricao,
        channels=tuple(str(v) for v in form.getlist("canais")),
        body=corpo,
        whatsapp_variables=tuple(v.strip() for v in ordem_whatsapp.split(",")),
        content_sid=content_sid,
    )
    existing = await get_stored_template(session, name=nome.strip().lower())
    try:
        await do_save_template(
            session, draft=draft, analyst=analyst, create=bool(novo) or existing is None
        )
    except ValidationFailed as exc:
        return await _form_with_error(request, session, analyst, draft, exc, is_new=bool(novo))
    return redirect(f"{PANEL_PREFIX}/modelos/{nome.strip().lower()}")


async def _form_with_error(
    request: Request,
    session: DbSession,
    analyst: Analyst,
    draft: TemplateDraft,
    exc: ValidationFailed,
    *,
    is_new: bool,
) -> HTMLResponse:
    """The form as the editor typed it, with the reason it was refused (nothing is lost)."""
    context = _form(draft, is_new=is_new)
    context["error"] = exc.message
    if not is_new:
        template = await get_stored_template(session, name=draft.name.strip().lower())
        if template is not None:
            context["versions"] = list(reversed(template.versions))
            context["template"] = template
    return render_page(
        request, "modelo_form.html", context, analyst=analyst, status_code=exc.status_code
    )


@router.post("/modelos/{name}/ativo")
async def toggle_template(
    session: DbSession,
    analyst: PanelWriter,
    name: str,
    ativo: Annotated[str, Form(max_length=1)] = "",
) -> Response:
    await do_set_template_active(session, name=name[:64], active=ativo == "1", analyst=analyst)
    return redirect(f"{PANEL_PREFIX}/modelos")
