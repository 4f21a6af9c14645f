"""What WhatsApp adds to an outbound message: the approved template's Content SID and numbered
variables, the 24-hour window, the number the infringer wrote to, and parts of at most 1,600
characters (Twilio refuses a longer body with error 21617:
https://www.twilio.com/docs/api/errors/21617)."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.numbers.models import Provider
from api.channels.numbers.service import default_provider, reply_route
from api.config import get_settings
from api.contacts.models import ContactKind
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import (
    Outbound,
    OutboundMessage,
    TemplateRef,
    TemplateUse,
    WindowClosed,
)
from api.templates.service import MessageTemplate, get_template, render, template_ref

# The language of our approved Cloud API templates (Meta names a template by name + language).
CLOUD_TEMPLATE_LANGUAGE = "pt_BR"

MAX_BODY_CHARS = 1600
# Where a long text may be cut, best first: between paragraphs, between lines, after a
# sentence, after a clause, between words.
_CUTS = (
    re.compile(r"\n[ \t]*\n"),
    re.compile(r"\n"),
    re.compile(r"[.!?…]+[\"')\]]*(?=\s)"),
    re.compile(r"[;:,](?=\s)"),
    re.compile(r"\s"),
)


def split_text(text: str, *, limit: int = MAX_BODY_CHARS) -> list[str]:
    """Cut a text into parts of at most `limit` characters on paragraph, line, sentence or word
    boundaries (a single word longer than `limit` is cut where it must); nothing is dropped
    but the whitespace at the cuts."""
    rest = text.strip()
    parts: list[str] = []
    while len(rest) > limit:
        cut = _best_cut(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest or not parts:
        parts.append(rest)
    return parts


def _best_cut(text: str, limit: int) -> int:
    window = text[: limit + 1]
    for pattern in _CUTS:
        ends = [m.end() for m in pattern.finditer(window) if 0 < m.end() <= limit]
        # A cut that leaves a tiny first part is worse than the next kind of boundary.
        if ends and ends[-1] > limit // 3 and text[: ends[-1]].strip():
            return ends[-1]
    return limit


class WhatsAppComposer:
    channel = Channel.WHATSAPP
    contact_kind = ContactKind.PHONE
    has_reply_window = True
    label = "WhatsApp"
    message_view: str | None = None

    async def compose(
        self, session: AsyncSession, *, conversation: Conversation, message: OutboundMessage
    ) -> list[Outbound]:
        if message.template is not None:
            template = get_template(message.template.name)
            route = await reply_route(session, conversation)
            if route.provider is Provider.TWILIO:
                return [
                    Outbound(
                        text="",
                        template=template_ref(template, message.template.variables),
                        attachments=message.attachments,
                    )
                ]
            # Cloud API: the approved template by its name (and language); the unofficial
            # gateways have no approval and send the text we render.
            return [
                Outbound(
                    text="",
                    template=named_template(template, message.template.variables),
                    attachments=message.attachments,
                    meta={"template_language": CLOUD_TEMPLATE_LANGUAGE}
                    if route.provider.cloud_api
                    else {"template": template.name},
                )
            ]
        texts = [t.strip() for t in message.texts if t and t.strip()]
        if not texts:
            return [Outbound(text="", attachments=message.attachments)]
        # One WhatsApp message per bot message; the attachments ride with the first.
        return [
            Outbound(text=text, attachments=message.attachments if i == 0 else ())
            for i, text in enumerate(texts)
        ]

    def check_template(self, template: TemplateUse) -> None:
        """Twilio needs an approved Content SID; the Cloud API sends a template by its name
        and the unofficial gateways as text (checked against the default number's provider:
        a preview has no conversation route)."""
        if default_provider() is Provider.TWILIO:
            template_ref(get_template(template.name), template.variables)
        else:
            named_template(get_template(template.name), template.variables)

    def split(self, outbound: Outbound) -> list[Outbound]:
        if outbound.template is not None or len(outbound.text) <= MAX_BODY_CHARS:
            return [outbound]
        parts = split_text(outbound.text)
        return [
            Outbound(
                text=part,
                subject=outbound.subject,
                attachments=outbound.attachments if i == 0 else (),
                meta={**outbound.meta, "part": i + 1, "parts": len(parts)},
            )
            for i, part in enumerate(parts)
        ]

    def window_open_until(self, conversation: Conversation) -> dt.datetime | None:
        """24 hours after the infringer's last message."""
        if conversation.last_inbound_at is None:
            return None
        hours = get_settings().whatsapp_window_hours
        return conversation.last_inbound_at + dt.timedelta(hours=hours)

    def check_window(
        self, conversation: Conversation, outbound: Outbound, now: dt.datetime
    ) -> None:
        if outbound.template is not None:
            return
        until = self.window_open_until(conversation)
        if until is None or now > until:
            raise WindowClosed(
                "Fora da janela de 24 horas do WhatsApp: só é possível enviar um modelo "
                "aprovado (template) até o infrator responder.",
                window_closed_at=until.isoformat() if until else None,
            )

    async def reply_from(self, session: AsyncSession, conversation: Conversation) -> str | None:
        """The provider and number the infringer last wrote to: the reply leaves from it (a firm
        with several numbers answers on the one the infringer knows), as the outbox's route."""
        route = await reply_route(session, conversation)
        return route.route or None


def named_template(template: MessageTemplate, variables: dict[str, str]) -> TemplateRef:
    """A template sent by its name (Cloud API), its variables numbered in the approved order."""
    numbered = {
        str(i): str(variables[name]) for i, name in enumerate(template.whatsapp_variables, 1)
    }
    return TemplateRef(
        content_sid=template.name, variables=numbered, rendered_text=render(template, variables)
    )
