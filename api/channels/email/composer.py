"""Composing the e-mail we send: one formal reply per inbound mail, threaded into the infringer's
client, with greeting, signature and the case reference in the subject.

Two halves:
- `email_reply_outbound` (at queue time, in the turn's transaction) gathers what threading needs
  from the database into `Outbound.meta`, which the outbox carries to the sender as
  `Envelope.meta`;
- `compose_message` (at send time, no database) builds the MIME message from the envelope.

Envelope.meta keys for e-mail (all optional; a bare envelope still gets a sensible mail):
  in_reply_to      their Message-ID (no <>) we answer
  references       list of Message-IDs (no <>), oldest first, already ending with in_reply_to
  original_subject the subject we answer
  case_reference   "INF-2026-000123"
  author_kind      "bot" | "analyst" | "system" (bot/system mail gets Auto-Submitted)
  author_name      the analyst's name for the signature
  recipient_name   for "Prezado(a) {nome},"
  cc               extra recipients (analyst's choice only; the bot answers the sender alone)
  quote            {"from": str, "date": ISO 8601, "text": str}: their text, quoted below ours
  mailbox          {"mailbox_id", "provider", "message_ref", "thread_id"}: the mailbox connector
                   that read the mail we answer (api/channels/mailboxes sends through it)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.models import Case
from api.config import Settings, get_settings
from api.contacts.models import ContactKind, ContactPoint, Infringer
from api.conversations.models import AuthorKind, Channel, Conversation, Direction, Message
from api.conversations.outbound import (
    Outbound,
    OutboundAttachment,
    OutboundMessage,
    TemplateUse,
)
from api.db import utcnow
from api.identifiers.case_ref import find_case_refs
from api.outbox.senders import Envelope

MAX_REFERENCES = 20
QUOTE_CHARS = 2000
_PREFIX_RE = re.compile(
    r"^\s*(?:(?:re|res|resp|fw|fwd|enc|tr|aw|wg|rv)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_BRACKETED_REF_RE = re.compile(r"\s*\[\s*INF[^\]]{0,20}\]\s*", re.IGNORECASE)
_GREETING_RE = re.compile(
    r"^\s*(?:prezad[oa]s?|prezado\(a\)|ol[aá]\b|oi\b|bom dia|boa tarde|boa noite|car[oa]s?\b)",
    re.IGNORECASE,
)
_MONTHS = (
    "janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro",
    "outubro", "novembro", "dezembro",
)  # fmt: skip


@dataclass(frozen=True)
class Firm:
    """Who signs our mail."""

    name: str
    site: str
    phone: str
    email_from: str  # "Name <address>"
    timezone: str = "America/Sao_Paulo"

    @classmethod
    def from_settings(cls, settings: Settings) -> Firm:
        return cls(
            name=settings.firm_name,
            site=settings.firm_site,
            phone=settings.firm_phone,
            email_from=settings.email_from,
            timezone=settings.business_timezone,
        )

    @property
    def address(self) -> str:
        return parseaddr(self.email_from)[1]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[-1] or "tratativa.local"


def make_message_id(*, message_id: int, conversation_id: int, secret: str, domain: str) -> str:
    """Our Message-ID (without <>) for an outbound message: the same on every retry of the same
    message, so a resend after an ambiguous failure threads and dedupes as one mail; the keyed
    hash keeps it unguessable and unique across databases."""
    tag = hmac.new(
        secret.encode(), f"{message_id}:{conversation_id}".encode(), hashlib.sha256
    ).hexdigest()[:20]
    return f"tt.{message_id}.{tag}@{domain}"


def base_subject(subject: str | None) -> str:
    """A subject without reply/forward prefixes (Re:, RES:, ENC:, Fwd: …) or bracketed references."""
    text = " ".join((subject or "").split())
    previous = None
    while previous != text:
        previous = text
        text = _PREFIX_RE.sub("", text)
        text = _BRACKETED_REF_RE.sub(" ", text).strip()
    return text


def compose_subject(
    original: str | None, case_reference: str | None, *, reply: bool, default: str
) -> str:
    """The reply subject, "Re: <original> [INF-2026-000123]": one "Re:", the reference once."""
    base = base_subject(original) or default
    subject = f"Re: {base}" if reply else base
    if case_reference and case_reference not in {r for r, _, _ in find_case_refs(base)}:
        subject = f"{subject} [{case_reference}]"
    return subject[:300]


def compose_body(texts: Sequence[str], meta: dict[str, Any], firm: Firm) -> str:
    """Greeting, the messages, signature, then the text we answer, quoted."""
    author = str(meta.get("author_kind") or AuthorKind.BOT)
    paragraphs = [t.strip() for t in texts if t and t.strip()]
    lines: list[str] = []
    if not (paragraphs and _GREETING_RE.match(paragraphs[0])):
        name = _clean_name(meta.get("recipient_name"))
        lines += [f"Prezado(a) {name}," if name else "Prezado(a) Senhor(a),", ""]
    for paragraph in paragraphs:
        lines += [paragraph, ""]
    lines.append("Atenciosamente,")
    if author == AuthorKind.ANALYST and meta.get("author_name"):
        lines.append(str(meta["author_name"]))
    lines += [firm.name, f"{firm.site} | {firm.phone}"]
    if meta.get("case_reference"):
        lines.append(f"Referência do caso: {meta['case_reference']}")
    if author != AuthorKind.ANALYST:
        lines += [
            "",
            f"Esta é uma resposta automática do atendimento da {firm.name}. Se preferir falar "
            "com uma pessoa da nossa equipe, basta pedir na sua resposta.",
        ]
    quote = meta.get("quote")
    if isinstance(quote, dict) and str(quote.get("text") or "").strip():
        when = _format_date(quote.get("date"), firm.timezone)
        who = str(quote.get("from") or "").strip() or "o remetente"
        lines += ["", f"Em {when}, {who} escreveu:" if when else f"{who} escreveu:"]
        lines += [f"> {line}".rstrip() for line in str(quote["text"]).splitlines()]
    return "\n".join(lines).strip() + "\n"


def compose_message(
    envelope: Envelope,
    *,
    firm: Firm,
    message_id: str,
    attachments: Sequence[tuple[bytes, str, str]] = (),
    now: dt.datetime | None = None,
) -> EmailMessage:
    """The MIME message for an outbound envelope; attachments are (data, filename, type)."""
    meta = envelope.meta
    author = str(meta.get("author_kind") or AuthorKind.BOT)
    in_reply_to = meta.get("in_reply_to")
    references = [str(r) for r in meta.get("references") or [] if r]
    message = EmailMessage()
    message["From"] = firm.email_from
    message["To"] = envelope.to
    cc = [str(a) for a in meta.get("cc") or [] if a]
    if cc:
        message["Cc"] = ", ".join(cc)
    subject = envelope.subject or compose_subject(
        meta.get("original_subject"),
        meta.get("case_reference"),
        reply=bool(in_reply_to),
        default=f"Atendimento {firm.name}",
    )
    message["Subject"] = " ".join(subject.split())
    message["Date"] = format_datetime(now or utcnow())
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        if not references or references[-1] != in_reply_to:
            references.append(str(in_reply_to))
    if references:
        message["References"] = " ".join(f"<{r}>" for r in _trim_references(references))
    if author != AuthorKind.ANALYST:
        # RFC 3834: tells the other side's auto-responders not to answer us (no mail loops).
        message["Auto-Submitted"] = "auto-replied" if in_reply_to else "auto-generated"
    message["Content-Language"] = "pt-BR"
    message.set_content(compose_body([envelope.text], meta, firm), cte="quoted-printable")
    for data, filename, content_type in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(
            data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=filename,
        )
    return message


async def email_reply_outbound(
    session: AsyncSession,
    *,
    conversation: Conversation,
    texts: Sequence[str],
    author: AuthorKind,
    reply_to_message_id: int | None = None,
    author_name: str | None = None,
    attachments: Sequence[OutboundAttachment] = (),
    cc: Sequence[str] = (),
) -> Outbound:
    """One outbound e-mail answering an inbound mail (the given one, else the conversation's
    latest), with everything the sender needs to thread it in `meta`."""
    answered = await _answered_message(session, conversation, reply_to_message_id)
    case_reference = (
        await session.scalar(sa.select(Case.reference).where(Case.id == conversation.case_id))
        if conversation.case_id is not None
        else None
    )
    meta: dict[str, Any] = {
        "author_kind": str(author),
        "case_reference": case_reference,
        "recipient_name": await _recipient_name(session, conversation, answered),
    }
    if author_name:
        meta["author_name"] = author_name
    if cc:
        meta["cc"] = list(cc)
    mailbox = (answered.meta or {}).get("mailbox") if answered is not None else None
    if isinstance(mailbox, dict) and mailbox.get("mailbox_id"):
        # Read through a Gmail/Graph mailbox: the reply goes back through it, in its thread.
        meta["mailbox"] = dict(mailbox)
    original_subject = answered.subject if answered is not None else None
    their_id = answered.provider_id if answered is not None else None
    if answered is not None and their_id and not their_id.startswith("sha256:"):
        answered_meta = answered.meta or {}
        references = [str(r) for r in answered_meta.get("references") or []]
        meta["in_reply_to"] = their_id
        meta["references"] = _trim_references([*references, their_id])
    if answered is not None and answered.text.strip():
        answered_meta = answered.meta or {}
        meta["quote"] = {
            "from": answered_meta.get("from_name") or answered_meta.get("from") or "",
            "date": answered_meta.get("date") or answered.created_at.isoformat(),
            "text": answered.text[:QUOTE_CHARS],
        }
    if original_subject is None:
        original_subject = await session.scalar(
            sa.select(Message.subject)
            .where(Message.conversation_id == conversation.id, Message.subject.is_not(None))
            .order_by(Message.id.desc())
            .limit(1)
        )
    meta["original_subject"] = original_subject
    firm_name = get_settings().firm_name
    subject = compose_subject(
        original_subject,
        case_reference,
        reply=answered is not None,
        default=f"Atendimento {firm_name}",
    )
    text = "\n\n".join(t.strip() for t in texts if t and t.strip())
    return Outbound(text=text, subject=subject, attachments=tuple(attachments), meta=meta)


async def _answered_message(
    session: AsyncSession, conversation: Conversation, message_id: int | None
) -> Message | None:
    query = sa.select(Message).where(
        Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND
    )
    if message_id is not None:
        query = query.where(Message.id == message_id)
    return await session.scalar(query.order_by(Message.id.desc()).limit(1))


async def _recipient_name(
    session: AsyncSession, conversation: Conversation, answered: Message | None
) -> str | None:
    name = _clean_name((answered.meta or {}).get("from_name") if answered is not None else None)
    if name:
        return name
    infringer_name = await session.scalar(
        sa.select(Infringer.name)
        .join(ContactPoint, ContactPoint.infringer_id == Infringer.id)
        .where(ContactPoint.id == conversation.contact_point_id)
    )
    return _clean_name(infringer_name)


def _clean_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = " ".join(value.replace('"', "").split())
    if not name or "@" in name or len(name) > 80:
        return None
    return name


def _trim_references(references: list[str]) -> list[str]:
    """RFC 5322 §3.6.4 lets long chains drop middle ids; keep the root and the newest ones."""
    unique = list(dict.fromkeys(references))
    if len(unique) <= MAX_REFERENCES:
        return unique
    return [unique[0], *unique[-(MAX_REFERENCES - 1) :]]


def _format_date(value: object, timezone: str) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value).astimezone(ZoneInfo(timezone))
    except (ValueError, KeyError):
        return None
    return f"{when.day} de {_MONTHS[when.month - 1]} de {when.year} às {when:%H:%M}"


class EmailComposer:
    """E-mail answers one mail with one mail: the turn's messages joined, greeting, signature,
    the [INF-…] subject, threading headers, and (in `compose_message`) Auto-Submitted only for
    automatic mail."""

    channel = Channel.EMAIL
    contact_kind = ContactKind.EMAIL
    has_reply_window = False
    label = "E-mail"
    message_view: str | None = "email"

    async def compose(
        self, session: AsyncSession, *, conversation: Conversation, message: OutboundMessage
    ) -> list[Outbound]:
        texts = (message.template.rendered_text,) if message.template else message.texts
        return [
            await email_reply_outbound(
                session,
                conversation=conversation,
                texts=texts,
                author=message.author,
                reply_to_message_id=message.reply_to_message_id,
                author_name=message.author_name if not message.automatic else None,
                attachments=message.attachments,
                cc=message.cc,
            )
        ]

    def check_template(self, template: TemplateUse) -> None:
        return None

    def split(self, outbound: Outbound) -> list[Outbound]:
        return [outbound]

    def window_open_until(self, conversation: Conversation) -> dt.datetime | None:
        return None

    def check_window(
        self, conversation: Conversation, outbound: Outbound, now: dt.datetime
    ) -> None:
        return None

    async def reply_from(self, session: AsyncSession, conversation: Conversation) -> str | None:
        return None
