"""The extrajudicial notice's content: the facts of a case (brand, listings, amount, deadline,
public link) and the reviewed pt-BR wording of notice.yml, rendered strictly into the e-mail's
subject and body and into the PDF (pdf.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, StrictUndefined, Template

from api.cases.models import Case
from api.config import Settings, get_settings
from api.identifiers.documents import parse_document
from api.identifiers.errors import InvalidIdentifier
from api.identifiers.money import format_brl

NOTICE_TEXTS = Path(__file__).with_name("notice.yml")
_env = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class ListingLine:
    marketplace: str
    url: str


@dataclass(frozen=True)
class NoticeContent:
    """Everything a notice says about its case, already formatted for people."""

    firm_name: str
    firm_site: str
    firm_phone: str
    firm_email: str
    brand: str
    brand_legal_name: str
    case_ref: str
    recipient_name: str
    document: str
    listings: tuple[ListingLine, ...]
    amount: str
    deadline: str
    notice_date: str
    notice_link: str

    def variables(self) -> dict[str, Any]:
        return {
            "firm_name": self.firm_name,
            "firm_site": self.firm_site,
            "firm_phone": self.firm_phone,
            "firm_email": self.firm_email,
            "brand": self.brand,
            "brand_legal_name": self.brand_legal_name,
            "case_ref": self.case_ref,
            "recipient_name": self.recipient_name,
            "document": self.document,
            "listings": self.listings,
            "amount": self.amount,
            "deadline": self.deadline,
            "notice_date": self.notice_date,
            "notice_link": self.notice_link,
        }


def notice_link(case: Case, settings: Settings | None = None) -> str:
    """The public page of the case's notice (/notificacao/<token>)."""
    base = (settings or get_settings()).public_base_url.rstrip("/")
    return f"{base}/notificacao/{case.notice_token}"


def notice_amount(case: Case) -> Decimal:
    """The case's amount (detection export or analyst); a case imported without one states the
    brand's base amount, as the brand's policy says."""
    return case.claimed_amount if case.claimed_amount is not None else case.brand.base_amount


def build_content(
    case: Case, *, deadline: dt.date, notice_date: dt.date, settings: Settings | None = None
) -> NoticeContent:
    """The notice's facts for a case (brand, infringer and listings loaded)."""
    settings = settings or get_settings()
    document = ""
    if case.infringer.document:
        try:
            document = parse_document(case.infringer.document).formatted
        except InvalidIdentifier:
            document = case.infringer.document
    return NoticeContent(
        firm_name=settings.firm_name,
        firm_site=settings.firm_site,
        firm_phone=settings.firm_phone,
        firm_email=settings.firm_email,
        brand=case.brand.name,
        brand_legal_name=case.brand.legal_name or case.brand.name,
        case_ref=case.reference,
        recipient_name=" ".join(case.infringer.name.split()) or "Senhor(a)",
        document=document,
        listings=tuple(ListingLine(item.marketplace, item.url) for item in case.listings),
        amount=format_brl(notice_amount(case)),
        deadline=deadline.strftime("%d/%m/%Y"),
        notice_date=notice_date.strftime("%d/%m/%Y"),
        notice_link=notice_link(case, settings),
    )


@lru_cache(maxsize=1)
def notice_texts() -> dict[str, Any]:
    """notice.yml, parsed once; a broken template fails loudly."""
    data: dict[str, Any] = yaml.safe_load(NOTICE_TEXTS.read_text(encoding="utf-8"))
    for text in (data["email"]["subject"], data["email"]["body"], data["pdf"]["closing"]):
        _env.parse(text)
    return data


@lru_cache(maxsize=64)
def _compiled(text: str) -> Template:
    return _env.from_string(text)


def _render(text: str, content: NoticeContent) -> str:
    return _compiled(text).render(**content.variables())


def email_subject(content: NoticeContent) -> str:
    return " ".join(_render(notice_texts()["email"]["subject"], content).split())


def email_body(content: NoticeContent) -> str:
    """The body (greeting and paragraphs; the channel adds signature and reference)."""
    text = _render(notice_texts()["email"]["body"], content)
    lines = [line.rstrip() for line in text.splitlines()]
    # Collapse the blank lines the template's loop may leave, keep paragraph breaks.
    out: list[str] = []
    for line in lines:
        if not line and out and not out[-1]:
            continue
        out.append(line)
    return "\n".join(out).strip()


def pdf_texts(content: NoticeContent) -> tuple[str, list[str], str]:
    """(title, paragraphs, closing) of the PDF."""
    pdf = notice_texts()["pdf"]
    return (
        _render(pdf["title"], content),
        [_render(p, content) for p in pdf["paragraphs"]],
        _render(pdf["closing"], content),
    )
