"""What the conversation page shows of each timeline row: side, author, NLU entities, and an
e-mail's headers and sanitized HTML (api/conversations/html.py, the one sanitizer)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from api.config import get_settings
from api.conversations.html import sanitize_email_html
from api.conversations.models import AuthorKind, Conversation, Direction, Message
from api.conversations.outbound import message_view
from api.conversations.views import TimelineRow
from api.panel.auth import PANEL_PREFIX
from api.panel.formatting import format_datetime
from api.timeline.models import TimelineEntry


def clean_email_html(html: str, *, message_id: int, inline_cids: frozenset[str]) -> Markup:
    """Sanitize stored e-mail HTML again before it reaches a page; `cid:` images the message
    carries are served by the panel's authenticated inline route, any other image is dropped."""

    def inline_src(cid: str) -> str | None:
        if cid in inline_cids:
            return f"{PANEL_PREFIX}/mensagens/{message_id}/inline/{quote(cid, safe='')}"
        return None

    return Markup(sanitize_email_html(html, inline_src=inline_src))  # safe by construction


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


# The rich view a channel's composer names for its messages (`ChannelComposer.message_view`):
# headers and sanitized HTML, shown by _linha_do_tempo.html.
EMAIL_VIEW = "email"


def email_view(message: Message, conversation: Conversation | None) -> EmailView:
    meta = message.meta or {}
    inline = meta.get("inline_images")
    cids = (
        frozenset(str(k).strip("<>") for k in inline) if isinstance(inline, dict) else frozenset()
    )
    raw_html = meta.get("html")  # sanitized by ingestion, and again here
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


def timeline_items(rows: Sequence[TimelineRow]) -> list[TimelineItem]:
    return [
        TimelineItem(
            entry=row.entry,
            message=row.message,
            email=(
                email_view(row.message, row.message_conversation)
                if row.message is not None and message_view(row.message.channel) == EMAIL_VIEW
                else None
            ),
            in_this_conversation=row.in_this_conversation,
        )
        for row in rows
    ]
