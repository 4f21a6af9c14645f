"""The notice's wording and PDF without a database: every fact in the text, markup in names
escaped, characters outside the PDF fonts drawn (never an error)."""

from __future__ import annotations

import io

import pypdf
import pytest

from api.outreach.notice import ListingLine, NoticeContent, email_body, email_subject
from api.outreach.pdf import pdf_filename, render_notice_pdf

pytestmark = pytest.mark.unit


def content(**overrides: object) -> NoticeContent:
    values: dict[str, object] = {
        "firm_name": "Tratativa Proteção de Marcas",
        "firm_site": "https://tratativa.example",
        "firm_phone": "+55 11 4000-0000",
        "firm_email": "atendimento@tratativa.example",
        "brand": "Acme",
        "brand_legal_name": "Acme Indústria e Comércio Ltda.",
        "case_ref": "INF-2026-000123",
        "recipient_name": "João Conceição",
        "document": "529.982.247-25",
        "listings": (
            ListingLine("Mercado Livre", "https://produto.mercadolivre.com.br/MLB-123"),
            ListingLine("Shopee", "https://shopee.com.br/produto-9"),
        ),
        "amount": "R$ 2.500,00",
        "deadline": "09/12/2026",
        "notice_date": "02/12/2026",
        "notice_link": "https://tratativa.example/notificacao/abc",
    }
    values.update(overrides)
    return NoticeContent(**values)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_the_email_states_every_fact_of_the_notice() -> None:
    notice = content()
    assert email_subject(notice) == "Notificação extrajudicial — marca Acme [INF-2026-000123]"
    body = email_body(notice)
    assert body.startswith("Prezado(a) João Conceição,\n\n")
    for fact in (
        "Acme Indústria e Comércio Ltda.",
        "- Mercado Livre: https://produto.mercadolivre.com.br/MLB-123",
        "- Shopee: https://shopee.com.br/produto-9",
        "até 09/12/2026",
        "R$ 2.500,00",
        "https://tratativa.example/notificacao/abc",
        "Nunca pedimos pagamento para conta de pessoa física",
        "não é uma decisão judicial",
    ):
        assert fact in body, fact
    assert "\n\n\n" not in body


def test_the_pdf_carries_the_notice_with_accents() -> None:
    data = render_notice_pdf(content())
    assert data.startswith(b"%PDF")
    text = pdf_text(data)
    for fact in (
        "NOTIFICAÇÃO EXTRAJUDICIAL",
        "João Conceição (529.982.247-25)",
        "Acme Indústria e Comércio Ltda.",
        "INF-2026-000123",
        "09/12/2026",
        "R$ 2.500,00",
        "https://produto.mercadolivre.com.br/MLB-123",
    ):
        assert fact in text, fact
    assert pdf_filename(content()) == "notificacao-extrajudicial-INF-2026-000123.pdf"


def test_markup_and_unusual_characters_in_names_neither_break_nor_inject() -> None:
    data = render_notice_pdf(
        content(recipient_name="Loja <b>Pirata</b> & Cia — Nguyễn 😀", brand="A&B <Marca>")
    )
    text = pdf_text(data)
    assert "Loja <b>Pirata</b> & Cia" in text
    assert "A&B <Marca>" in text
