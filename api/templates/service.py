"""Message templates: the catalog (in the database, every edit a new version; the YAML file is
the seed and the fallback for code that runs without a database), a case's variables, strict
rendering and sending.

The channel composers read templates synchronously (`get_template`); the async entry points
(`load_templates`, `do_send_template`) first load the current versions from the database into a
context-local overlay, so a composer in the same request or job sees exactly the version that
is being sent, whatever another process did meanwhile.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from jinja2 import Environment, StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.models import Case
from api.config import get_settings
from api.conversations.models import Channel, Conversation, Message
from api.conversations.outbound import (
    OutboundMessage,
    TemplateRef,
    TemplateUse,
    author_of,
    do_queue_message,
    get_composer,
)
from api.errors import NotFound, ValidationFailed
from api.identifiers.money import format_brl
from api.payments.service import get_current_payment_request, states_terms
from api.templates.models import StoredTemplate, TemplateVersion
from api.timeline.models import ActorKind
from api.timeline.service import Actor

CATALOG_PATH = Path(__file__).with_name("catalog.yml")
_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


class TemplateVariableMissing(ValidationFailed):
    code = "template_variable_missing"


@dataclass(frozen=True)
class MessageTemplate:
    name: str
    description: str
    channels: frozenset[Channel]
    body: str
    whatsapp_variables: tuple[str, ...]
    content_sid: str | None
    # The stored version this is (None: read from the YAML seed without a database).
    version: int | None = None

    @property
    def variables(self) -> frozenset[str]:
        return frozenset(meta.find_undeclared_variables(_env.parse(self.body)))


@lru_cache(maxsize=1)
def load_catalog(path: Path = CATALOG_PATH) -> dict[str, MessageTemplate]:
    """Parse and check the catalog once; a broken template fails loudly at startup."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sids = get_settings().template_content_sids
    catalog: dict[str, MessageTemplate] = {}
    for item in data.get("templates", []):
        try:
            _env.parse(item["body"])
        except TemplateSyntaxError as exc:
            raise ValueError(f"template {item.get('name')!r}: {exc}") from exc
        template = MessageTemplate(
            name=item["name"],
            description=item.get("description", ""),
            channels=frozenset(Channel(c) for c in item.get("channels", ["whatsapp", "email"])),
            body=" ".join(str(item["body"]).split()),
            whatsapp_variables=tuple(item.get("whatsapp_variables", [])),
            content_sid=sids.get(item["name"]) or item.get("content_sid"),
        )
        unknown = set(template.whatsapp_variables) - template.variables
        if unknown:
            raise ValueError(
                f"template {template.name!r}: whatsapp_variables {unknown} not in body"
            )
        catalog[template.name] = template
    return catalog


_loaded: ContextVar[dict[str, MessageTemplate] | None] = ContextVar(
    "tratativa_loaded_templates", default=None
)


def template_from_version(name: str, version: TemplateVersion) -> MessageTemplate:
    """A stored version as the renderer and the composers use it (TEMPLATE_CONTENT_SIDS
    overrides the stored Content SID when it is read, in `get_template`)."""
    return MessageTemplate(
        name=name,
        description=version.description,
        channels=frozenset(Channel(c) for c in version.channels),
        body=version.body,
        whatsapp_variables=tuple(version.whatsapp_variables),
        content_sid=version.content_sid,
        version=version.version,
    )


async def load_templates(session: AsyncSession) -> dict[str, MessageTemplate]:
    """The active templates at their current version, from the database (plus any YAML seed
    template not stored yet); also what `get_template` answers for the rest of this context."""
    rows = (
        await session.execute(
            sa.select(StoredTemplate.name, TemplateVersion)
            .join(
                TemplateVersion,
                sa.and_(
                    TemplateVersion.template_id == StoredTemplate.id,
                    TemplateVersion.version == StoredTemplate.current_version,
                ),
            )
            .where(StoredTemplate.active.is_(True))
            .order_by(StoredTemplate.name)
        )
    ).all()
    # The stored versions win; a YAML template not stored yet (added to the seed after the
    # database was migrated) is still offered.
    retired = set(
        await session.scalars(
            sa.select(StoredTemplate.name).where(StoredTemplate.active.is_(False))
        )
    )
    loaded = {
        name: template
        for name, template in {
            **load_catalog(),
            **{name: template_from_version(name, version) for name, version in rows},
        }.items()
        if name not in retired
    }
    _loaded.set(loaded)
    return {name: _with_configured_sid(t) for name, t in loaded.items()}


def _with_configured_sid(template: MessageTemplate) -> MessageTemplate:
    sid = get_settings().template_content_sids.get(template.name)
    return replace(template, content_sid=sid) if sid else template


def get_template(name: str) -> MessageTemplate:
    loaded = _loaded.get()
    if loaded is not None and name in loaded:
        return _with_configured_sid(loaded[name])
    template = load_catalog().get(name)
    if template is None:
        raise NotFound(f"Modelo de mensagem {name!r} não existe.")
    return template


def render(template: MessageTemplate, variables: dict[str, Any]) -> str:
    """Render with every variable required: a missing one is an error, never a blank."""
    missing = sorted(
        v for v in template.variables if v not in variables or variables[v] in (None, "")
    )
    if missing:
        raise TemplateVariableMissing(
            f"Variáveis ausentes no modelo {template.name!r}: {', '.join(missing)}.",
            missing=missing,
        )
    try:
        return _env.from_string(template.body).render(**variables)
    except UndefinedError as exc:  # pragma: no cover - guarded by the check above
        raise TemplateVariableMissing(str(exc)) from exc


async def variables_for_case(
    session: AsyncSession, case: Case, *, analyst_name: str | None = None
) -> dict[str, str]:
    """What the database knows for a case's templates; absent facts are left out (not blank)."""
    settings = get_settings()
    values: dict[str, str] = {
        "firm_name": settings.firm_name,
        "brand": case.brand.name,
        "case_ref": case.reference,
        "infringer_name": case.infringer.name.split()[0].title(),
    }
    if analyst_name:
        values["analyst_name"] = analyst_name
    if case.agreed_installments:
        values["installments"] = str(case.agreed_installments)
    if case.response_deadline is not None:
        values["deadline"] = case.response_deadline.strftime("%d/%m/%Y")
    amount = case.agreed_amount or case.claimed_amount
    if amount is not None:
        values["amount"] = format_brl(amount)
    payment = await get_current_payment_request(session, case_id=case.id)
    # A link leaves only when its request states the case's current agreement (an analyst's
    # template must never carry details the infringer is no longer bound by).
    if (
        payment is not None
        and case.agreed_amount is not None
        and states_terms(
            payment, amount=case.agreed_amount, installments=case.agreed_installments or 1
        )
    ):
        values["payment_link"] = (
            f"{settings.public_base_url.rstrip('/')}/pagamento/{payment.public_token}"
        )
    return values


def template_ref(template: MessageTemplate, variables: dict[str, Any]) -> TemplateRef:
    text = render(template, variables)
    if template.content_sid is None:
        raise ValidationFailed(
            f"O modelo {template.name!r} não tem Content SID aprovado configurado "
            "(TEMPLATE_CONTENT_SIDS)."
        )
    numbered = {
        str(i): str(variables[name]) for i, name in enumerate(template.whatsapp_variables, 1)
    }
    return TemplateRef(content_sid=template.content_sid, variables=numbered, rendered_text=text)


def render_for_conversation(
    conversation: Conversation, template: MessageTemplate, variables: dict[str, Any]
) -> str:
    """The text a template would send on this conversation's channel (a preview); raises what
    sending would raise (a missing variable, a WhatsApp template without approved SID)."""
    text = render(template, variables)
    get_composer(conversation.channel).check_template(
        TemplateUse(name=template.name, variables=dict(variables), rendered_text=text)
    )
    return text


async def do_send_template(
    session: AsyncSession,
    *,
    conversation: Conversation,
    case: Case,
    name: str,
    actor: Actor,
    overrides: dict[str, str] | None = None,
) -> Message:
    """Render a template's current version with the case's data (plus overrides) and queue it
    on the channel; the queued messages record which version they used."""
    await load_templates(session)
    template = get_template(name)
    if conversation.channel not in template.channels:
        raise ValidationFailed(f"O modelo {name!r} não serve para o canal {conversation.channel}.")
    analyst_name = actor.name if actor.kind is ActorKind.ANALYST else None
    variables = {
        **await variables_for_case(session, case, analyst_name=analyst_name),
        **(overrides or {}),
    }
    # The channel decides how a template travels (WhatsApp: the approved Content SID; e-mail: a
    # threaded reply with the [INF-…] subject, and for an analyst's template neither the
    # automatic-answer footer nor Auto-Submitted).
    message = OutboundMessage(
        author=author_of(actor),
        template=TemplateUse(
            name=template.name, variables=variables, rendered_text=render(template, variables)
        ),
        author_name=actor.name if actor.kind is ActorKind.ANALYST else None,
    )
    queued = await do_queue_message(
        session, conversation=conversation, message=message, actor=actor
    )
    for item in queued:
        item.meta = {**(item.meta or {}), "template": name, "template_version": template.version}
    await session.flush()
    return queued[0]
