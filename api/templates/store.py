"""Managing the stored templates: list, read with their versions, save (a new version each time
something changed), all checked against the fixed list of variables a case can fill."""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa
from jinja2 import TemplateSyntaxError, meta
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.analysts.models import Analyst, Role
from api.conversations.models import Channel
from api.db import utcnow
from api.errors import NotFound, PermissionDenied, ValidationFailed
from api.templates.models import StoredTemplate, TemplateVersion
from api.templates.service import _env

# The variables a template may use: what `variables_for_case` (and the analyst sending it) can
# fill. Anything else is refused when the template is saved, not discovered when it is sent.
VARIABLES: dict[str, str] = {
    "infringer_name": "Nome do infrator",
    "brand": "Marca",
    "case_ref": "Referência do caso",
    "amount": "Valor (acordado ou pleiteado)",
    "installments": "Número de parcelas",
    "payment_link": "Link de pagamento",
    "deadline": "Prazo de resposta",
    "analyst_name": "Nome do analista",
    "firm_name": "Nome do escritório",
    # Filled by the installment reminders (automations), from the installment itself.
    "installment_number": "Número da parcela",
    "installment_amount": "Valor da parcela",
    "due_date": "Vencimento da parcela",
}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{2,63}$")
_CONTENT_SID_RE = re.compile(r"^HX[0-9a-fA-F]{32}$")
MAX_BODY = 4000


class UnknownTemplateVariable(ValidationFailed):
    code = "template_unknown_variable"


@dataclass(frozen=True)
class TemplateDraft:
    """What an editor submits."""

    name: str
    description: str
    channels: tuple[str, ...]
    body: str
    whatsapp_variables: tuple[str, ...]
    content_sid: str | None


@dataclass(frozen=True)
class TemplateSummary:
    template: StoredTemplate
    current: TemplateVersion


def check_can_manage_templates(analyst: Analyst) -> None:
    if not analyst.has_role(Role.SUPERVISOR):
        raise PermissionDenied("Somente supervisores e administradores editam modelos.")


def body_variables(body: str) -> frozenset[str]:
    """The variables a body uses; a syntax error is a clear refusal."""
    try:
        parsed = _env.parse(body)
    except TemplateSyntaxError as exc:
        raise ValidationFailed(f"Erro de sintaxe no texto do modelo (linha {exc.lineno}).") from exc
    return frozenset(meta.find_undeclared_variables(parsed))


def check_draft(draft: TemplateDraft) -> TemplateDraft:
    """The draft normalized, or a ValidationFailed that names what is wrong."""
    name = draft.name.strip().lower()
    if not _NAME_RE.match(name):
        raise ValidationFailed(
            "Nome inválido: use de 3 a 64 letras minúsculas, números e _ (ex.: lembrete_prazo)."
        )
    body = " ".join(draft.body.split())
    if not body:
        raise ValidationFailed("Escreva o texto do modelo.")
    if len(body) > MAX_BODY:
        raise ValidationFailed(f"O texto do modelo pode ter no máximo {MAX_BODY} caracteres.")
    used = body_variables(body)
    unknown = sorted(used - set(VARIABLES))
    if unknown:
        raise UnknownTemplateVariable(
            f"Variável desconhecida no modelo: {', '.join(unknown)}. "
            f"Use apenas: {', '.join(VARIABLES)}.",
            unknown=unknown,
        )
    channels = tuple(sorted({c.strip() for c in draft.channels if c.strip()}))
    if not channels:
        raise ValidationFailed("Escolha ao menos um canal.")
    for channel in channels:
        try:
            Channel(channel)
        except ValueError as exc:
            raise ValidationFailed(f"Canal desconhecido: {channel}.") from exc
    order = tuple(v.strip() for v in draft.whatsapp_variables if v.strip())
    stray = sorted(set(order) - used)
    if stray:
        raise ValidationFailed(
            f"A ordem de variáveis do WhatsApp cita variáveis que o texto não usa: "
            f"{', '.join(stray)}."
        )
    if len(set(order)) != len(order):
        raise ValidationFailed("A ordem de variáveis do WhatsApp repete uma variável.")
    sid = (draft.content_sid or "").strip() or None
    if sid is not None and not _CONTENT_SID_RE.match(sid):
        raise ValidationFailed("Content SID inválido: esperado HX seguido de 32 hexadecimais.")
    if sid is not None and set(order) != used:
        raise ValidationFailed(
            "Informe a ordem de todas as variáveis do texto no modelo aprovado do WhatsApp "
            f"(faltam: {', '.join(sorted(used - set(order)))})."
        )
    return TemplateDraft(
        name=name,
        description=" ".join(draft.description.split())[:300],
        channels=channels,
        body=body,
        whatsapp_variables=order,
        content_sid=sid,
    )


async def get_template_summaries(session: AsyncSession) -> list[TemplateSummary]:
    rows = (
        await session.execute(
            sa.select(StoredTemplate, TemplateVersion)
            .join(
                TemplateVersion,
                sa.and_(
                    TemplateVersion.template_id == StoredTemplate.id,
                    TemplateVersion.version == StoredTemplate.current_version,
                ),
            )
            .order_by(StoredTemplate.name)
        )
    ).all()
    return [TemplateSummary(template, version) for template, version in rows]


async def get_stored_template(session: AsyncSession, *, name: str) -> StoredTemplate | None:
    return await session.scalar(
        sa.select(StoredTemplate)
        .where(StoredTemplate.name == name)
        .options(selectinload(StoredTemplate.versions))
    )


async def require_stored_template(session: AsyncSession, *, name: str) -> StoredTemplate:
    template = await get_stored_template(session, name=name)
    if template is None:
        raise NotFound(f"Modelo {name!r} não encontrado.")
    return template


def current_version(template: StoredTemplate) -> TemplateVersion:
    return next(v for v in template.versions if v.version == template.current_version)


def _same(version: TemplateVersion, draft: TemplateDraft) -> bool:
    return (
        version.description == draft.description
        and tuple(version.channels) == draft.channels
        and version.body == draft.body
        and tuple(version.whatsapp_variables) == draft.whatsapp_variables
        and version.content_sid == draft.content_sid
    )


async def do_save_template(
    session: AsyncSession, *, draft: TemplateDraft, analyst: Analyst, create: bool
) -> TemplateVersion:
    """Create a template (version 1) or add a version to an existing one; an unchanged draft
    adds nothing. Versions are never edited, so a sent message's version stays what it was."""
    check_can_manage_templates(analyst)
    draft = check_draft(draft)
    template = await session.scalar(
        sa.select(StoredTemplate).where(StoredTemplate.name == draft.name).with_for_update()
    )
    if create and template is not None:
        raise ValidationFailed(f"Já existe um modelo chamado {draft.name}.")
    if not create and template is None:
        raise NotFound(f"Modelo {draft.name!r} não encontrado.")
    now = utcnow()
    if template is None:
        template = StoredTemplate(name=draft.name, current_version=1, active=True, updated_at=now)
        session.add(template)
        await session.flush()
        number = 1
    else:
        latest = await session.scalar(
            sa.select(TemplateVersion).where(
                TemplateVersion.template_id == template.id,
                TemplateVersion.version == template.current_version,
            )
        )
        if latest is not None and _same(latest, draft):
            return latest
        number = (
            await session.scalar(
                sa.select(sa.func.max(TemplateVersion.version)).where(
                    TemplateVersion.template_id == template.id
                )
            )
            or 0
        ) + 1
        template.current_version = number
        template.updated_at = now
    version = TemplateVersion(
        template_id=template.id,
        version=number,
        description=draft.description,
        channels=list(draft.channels),
        body=draft.body,
        whatsapp_variables=list(draft.whatsapp_variables),
        content_sid=draft.content_sid,
        created_by=analyst.id,
    )
    session.add(version)
    await session.flush()
    return version


async def do_set_template_active(
    session: AsyncSession, *, name: str, active: bool, analyst: Analyst
) -> StoredTemplate:
    """Retire a template from the pickers (its versions stay), or bring it back."""
    check_can_manage_templates(analyst)
    template = await require_stored_template(session, name=name)
    template.active = active
    template.updated_at = utcnow()
    await session.flush()
    return template
