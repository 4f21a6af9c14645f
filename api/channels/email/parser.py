"""Turning a raw RFC 5322 message into what the pipeline needs: the new text the bot reads (quoted
history stripped), the full text and sanitized HTML an analyst reads, attachments and inline
images, and the threading headers.

Pure functions, no I/O: storing the raw message and the files is the ingestion's job.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.headerregistry import Address, BaseHeader
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from mailparser_reply import EmailMessage as ReplyMessage
from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE

from api.conversations.html import sanitize_email_html

# mail-parser-reply (1.36) ships no Portuguese; its language table is a plain dict read at
# parse time, so Brazilian clients' markers are registered here: Gmail/Apple "Em … escreveu:",
# Outlook "De:/Enviado:/Para:/Assunto:", "Enviado do meu iPhone", pt-BR sign-offs (whole lines
# only: "Obrigado pelo retorno, …" is content, not a signature).
MAIL_LANGUAGES.setdefault(
    "pt",
    {
        "wrote_header": r"^(?!Em[.\s]*Em\s(.+?\s?.+?)\sescreveu:)("
        + QUOTED_MATCH_INCLUDE
        + r"Em\s(?:.+?\s?.+?)\s?escreveu:)$",
        "from_header": r"((?:(?:^|\n|\n"
        + QUOTED_MATCH_INCLUDE
        + r")[* ]*(?:De|Enviado|Enviado em|Enviada em|Data|Para|Cc|Cco|Assunto):[ *]*"
        + r"(?:\s{,2}).*){2,}(?:\n.*){,1})",
        "disclaimers": [
            r"(?:Aviso|Nota|Cl[aá]usula) de confidencialidade:",
            "AVISO LEGAL:",
            "Aviso:",
        ],
        "signatures": [
            r"Atenciosamente,?\s*$",
            r"Att\.?,?\s*$",
            r"Cordialmente,?\s*$",
            r"Respeitosamente,?\s*$",
            r"Abra[çc]os?,?\s*$",
        ],
        "sent_from": r"Enviado do meu|Enviado de meu|Enviado a partir do|Obter o Outlook para",
    },
)

REPLY_LANGUAGES = ["pt", "en"]
FULL_TEXT_LIMIT = 200_000  # characters of the whole body kept in the message meta
HTML_LIMIT = 500_000
BOT_TEXT_LIMIT = 10_000

_MSGID_RE = re.compile(r"<([^<>\s]+)>")
# Markers after which everything is someone else's text (forwarded or quoted in full).
_CUT_MARKERS = re.compile(
    r"^\s*(?:"
    r"-{2,}\s*(?:Forwarded message|Mensagem encaminhada|Original Message|Mensagem original)\s*-{2,}"
    r"|Begin forwarded message:|In[ií]cio da mensagem encaminhada:"
    r"|_{20,}"
    r")\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_QUOTED_LINE = re.compile(r"^\s*>")
_BLANK_RUNS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class ParsedAttachment:
    content_type: str
    data: bytes
    filename: str | None = None
    content_id: str | None = None
    inline: bool = False


@dataclass(frozen=True)
class ParsedEmail:
    message: EmailMessage
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_address: str | None
    from_name: str | None
    reply_to: str | None
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    date: dt.datetime | None
    text: str  # the whole plain-text body (or the HTML's text)
    reply_text: str  # what the bot reads: the new text, quoted history stripped
    html: str | None
    attachments: tuple[ParsedAttachment, ...] = ()
    defects: tuple[str, ...] = field(default=())

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Ids this mail answers, nearest first: In-Reply-To, then References newest first."""
        seen: dict[str, None] = {}
        for value in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(value, None)
        return tuple(seen)

    def header(self, name: str) -> str | None:
        value = self.message.get(name)
        return None if value is None else str(value).strip()


class _CachingPolicy(EmailPolicy):
    """`policy.default` that parses each distinct header value once. The standard library
    re-parses a header on every read (a part's Content-Type is read ~6 times while walking a
    message), which was ~80% of parsing; header objects are immutable, so sharing them is safe."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if len(value) > _CACHED_HEADER_CHARS or hasattr(value, "name"):
            return super().header_fetch_parse(name, value)
        return _parsed_header(name, value)


_CACHED_HEADER_CHARS = 2000
_HEADER_CACHE_SIZE = 4096
_header_cache: dict[tuple[str, str], BaseHeader] = {}


def _parsed_header(name: str, value: str) -> Any:
    key = (name, value)
    found = _header_cache.get(key)
    if found is None:
        if len(_header_cache) >= _HEADER_CACHE_SIZE:
            _header_cache.clear()
        found = _header_cache[key] = EmailPolicy.header_fetch_parse(PARSE_POLICY, name, value)
    return found


PARSE_POLICY = _CachingPolicy()


def parse_email(raw: bytes) -> ParsedEmail:
    """Parse a raw message (any charset, quoted-printable or base64, multipart or not)."""
    message = message_from_bytes(raw, policy=PARSE_POLICY)
    assert isinstance(message, EmailMessage)
    plain: list[str] = []
    html: list[str] = []
    attachments: list[ParsedAttachment] = []
    for part, inside_related in _leaves(message):
        _collect(part, inside_related, plain, html, attachments)
    html_text = "\n".join(html) if html else None
    text = "\n".join(plain) if plain else (html_to_text(html_text) if html_text else "")
    text = _tidy(text)
    from_address, from_name = _first_address(message, "From")
    return ParsedEmail(
        message=message,
        message_id=normalize_msgid(_header_str(message, "Message-ID")),
        in_reply_to=tuple(msgids(_header_str(message, "In-Reply-To"))),
        references=tuple(msgids(_header_str(message, "References"))),
        from_address=from_address,
        from_name=from_name,
        reply_to=_first_address(message, "Reply-To")[0],
        to=tuple(_addresses(message, "To")),
        cc=tuple(_addresses(message, "Cc")),
        subject=" ".join((_header_str(message, "Subject") or "").split()),
        date=_date(message),
        text=text,
        reply_text=strip_quoted(text)[:BOT_TEXT_LIMIT],
        html=html_text,
        attachments=tuple(attachments),
        defects=tuple(type(d).__name__ for d in message.defects),
    )


def normalize_msgid(value: str | None) -> str | None:
    """From "<abc@host>" to "abc@host"; a bare id without brackets is kept as is."""
    if not value:
        return None
    found = _MSGID_RE.search(value)
    if found:
        return found.group(1)[:255]
    bare = value.strip()
    return bare[:255] if bare and " " not in bare else None


def msgids(value: str | None) -> list[str]:
    """Every <id> in an In-Reply-To or References header, in order, without duplicates."""
    if not value:
        return []
    return list(dict.fromkeys(m[:255] for m in _MSGID_RE.findall(value)))


def content_hash(raw: bytes) -> str:
    """A stable id for mail without a Message-ID: the identifying headers and the body, not the
    trace headers a server adds on delivery (Received, Delivered-To, Return-Path)."""
    message = message_from_bytes(raw, policy=policy.compat32)
    digest = hashlib.sha256()
    for name in ("From", "To", "Cc", "Date", "Subject"):
        digest.update(f"{name}:{message.get(name, '')}\n".encode("utf-8", "surrogateescape"))
    match = re.search(rb"\r?\n\r?\n", raw)
    digest.update(raw[match.end() :] if match else b"")
    return f"sha256:{digest.hexdigest()}"


def strip_quoted(text: str) -> str:
    """The newest part of a reply: quoted history, forwarded blocks and mobile sign-offs removed."""
    text = text.replace("\r\n", "\n")
    cut = _CUT_MARKERS.search(text)
    head = text[: cut.start()] if cut else text
    header, disclaimers, signature = _reply_patterns()
    try:
        parsed = ReplyMessage(
            text=head,
            languages=list(REPLY_LANGUAGES),
            keep_hyphen_lists=True,
            _header_regex=header,
            _disclaimers_regex=disclaimers,
            _signature_regex=signature,
        ).read()
        newest = str(parsed.replies[0].body) if parsed.replies else head
    except Exception:  # a pathological body must not stop ingestion; the fallback still cuts
        newest = head
    # Fallback for what the library leaves: trailing "> …" blocks and their attribution line.
    lines = newest.split("\n")
    while lines and (not lines[-1].strip() or _QUOTED_LINE.match(lines[-1])):
        lines.pop()
    result = _tidy("\n".join(line for line in lines if not _QUOTED_LINE.match(line)))
    if result:
        return result
    # Everything looked quoted (a bare forward): give the bot the unquoted remainder, if any.
    return _tidy("\n".join(line for line in text.split("\n") if not _QUOTED_LINE.match(line)))


@functools.cache
def _reply_patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """mail-parser-reply's three patterns for our languages, built once. The library builds them
    for every mail it reads (joining its language tables into patterns of a few KB, then
    hashing them for re's cache), which cost more than searching a short reply with them; a
    reader it is given them is otherwise the same."""
    template = ReplyMessage(text="", languages=list(REPLY_LANGUAGES), keep_hyphen_lists=True)
    return template.HEADER_REGEX, template.DISCLAIMERS_REGEX, template.SIGNATURE_REGEX


def sanitize_html(html: str) -> str:
    """HTML safe to store for the panel (api/conversations/html.py: the one allow-list);
    inline images keep their cid: reference for the panel to resolve."""
    return sanitize_email_html(html[:HTML_LIMIT])


def html_to_text(html: str) -> str:
    """Readable text from an HTML body: blocks become lines, links keep their address, and
    <blockquote> lines are prefixed with "> " so quoted history can be stripped like plain text."""
    converter = _HtmlText()
    converter.feed(html)
    converter.close()
    return _tidy(converter.result())


class _HtmlText(HTMLParser):
    _SKIP = frozenset({"script", "style", "head", "title", "template"})
    _BLOCK = frozenset(
        {
            "p", "div", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6",
            "pre", "hr", "section", "article", "header", "footer", "center", "dl", "dt", "dd",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[str] = []
        self._line: list[str] = []
        self._line_depth = 0
        self._depth = 0
        self._skip = 0
        self._pre = 0
        self._href: list[str | None] = []

    def _newline(self) -> None:
        text = "".join(self._line).strip() if not self._pre else "".join(self._line)
        prefix = "> " * self._line_depth
        self._lines.append(prefix + text if text else prefix.rstrip())
        self._line = []
        self._line_depth = self._depth

    def _emit(self, text: str) -> None:
        if not self._line:
            self._line_depth = self._depth
        self._line.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "br":
            self._newline()
        elif tag == "blockquote":
            self._newline()
            self._depth += 1
            self._line_depth = self._depth
        elif tag == "li":
            self._newline()
            self._emit("- ")
        elif tag in self._BLOCK:
            if tag == "pre":
                self._pre += 1
            if self._line:
                self._newline()
        elif tag == "td" or tag == "th":
            self._emit(" ")
        if tag == "a":
            self._href.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "blockquote":
            self._newline()
            self._depth = max(0, self._depth - 1)
            self._line_depth = self._depth
        elif tag in self._BLOCK or tag == "li":
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
            self._newline()
        elif tag == "a" and self._href:
            href = self._href.pop()
            shown = "".join(self._line)
            if href and href.startswith(("http://", "https://")) and href not in shown:
                self._emit(f" <{href}>")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        data = data.replace("\xa0", " ")
        if self._pre:
            for index, piece in enumerate(data.split("\n")):
                if index:
                    self._newline()
                self._emit(piece)
            return
        data = re.sub(r"\s+", " ", data)
        if data.strip() or self._line:
            self._emit(data)

    def result(self) -> str:
        if self._line:
            self._newline()
        return "\n".join(self._lines)


def _leaves(part: Message, inside_related: bool = False) -> Iterator[tuple[EmailMessage, bool]]:
    """Leaf parts in order; an attached message (message/rfc822) is one leaf, not opened."""
    if part.is_multipart() and part.get_content_type() != "message/rfc822":
        related = inside_related or part.get_content_type() == "multipart/related"
        for child in part.iter_parts() if isinstance(part, EmailMessage) else []:
            yield from _leaves(child, related)
        return
    assert isinstance(part, EmailMessage)
    yield part, inside_related


def _collect(
    part: EmailMessage,
    inside_related: bool,
    plain: list[str],
    html: list[str],
    attachments: list[ParsedAttachment],
) -> None:
    content_type = part.get_content_type()
    disposition = part.get_content_disposition()
    filename = _filename(part)
    is_body_text = (
        content_type in ("text/plain", "text/html")
        and disposition != "attachment"
        and not (filename and disposition is not None)
    )
    if is_body_text:
        (plain if content_type == "text/plain" else html).append(decode_text(part))
        return
    if content_type == "message/rfc822":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        data = inner.as_bytes() if isinstance(inner, Message) else b""
        filename = filename or "mensagem-anexada.eml"
    else:
        decoded = part.get_payload(decode=True)
        data = decoded if isinstance(decoded, bytes) else b""
    content_id = normalize_msgid(_header_str(part, "Content-ID"))
    inline = disposition == "inline" or (disposition is None and inside_related)
    attachments.append(
        ParsedAttachment(
            content_type=content_type,
            data=data,
            filename=filename,
            content_id=content_id,
            inline=inline and content_id is not None,
        )
    )


_LATIN1_LABELS = frozenset(
    {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii"}
)


def decode_text(part: Message) -> str:
    """A text part's content. Labels are not trusted blindly: "iso-8859-1" and "us-ascii" are read
    as windows-1252 (what Outlook actually sends, as browsers do), undeclared 8-bit text is tried as
    UTF-8 first, and an unknown charset never loses the message."""
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else str(part.get_payload()).encode()
    declared = (part.get_content_charset() or "us-ascii").lower()
    candidates: list[str] = []
    if declared in _LATIN1_LABELS:
        candidates = ["utf-8", "cp1252"] if declared in ("us-ascii", "ascii") else ["cp1252"]
    else:
        candidates = [declared, "utf-8", "cp1252"]
    for charset in candidates:
        try:
            return data.decode(charset)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, LookupError):
        return None
    if not name:
        return None
    name = re.split(r"[\\/]", str(name))[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()
    return name[:255] or None


def _header_str(message: Message, name: str) -> str | None:
    try:
        value = message.get(name)
    except (ValueError, LookupError, IndexError):  # a malformed header must not lose the mail
        raw = message.get_all(name) if hasattr(message, "get_all") else None
        value = raw[0] if raw else None
    return None if value is None else str(value)


def _first_address(message: Message, name: str) -> tuple[str | None, str | None]:
    found = _address_objects(message, name)
    if not found:
        return None, None
    first = found[0]
    return (first.addr_spec.lower() or None), (first.display_name or None)


def _addresses(message: Message, name: str) -> list[str]:
    return [a.addr_spec.lower() for a in _address_objects(message, name) if a.addr_spec]


def _address_objects(message: Message, name: str) -> list[Address]:
    try:
        header: Any = message.get(name)
    except (ValueError, LookupError, IndexError):
        return []
    if header is None:
        return []
    addresses = getattr(header, "addresses", None)
    if addresses is not None:
        return [a for a in addresses if isinstance(a, Address) and "@" in a.addr_spec]
    return []


def _date(message: Message) -> dt.datetime | None:
    value = _header_str(message, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip()
