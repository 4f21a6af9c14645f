"""The notice as a PDF (ReportLab). Its standard fonts use WinAnsi (cp1252), which covers
Portuguese (ã, ç, é, õ…) and the typographic dashes and quotes; a character outside it is drawn
as a box, never an error, so an unusual name cannot stop a send."""

from __future__ import annotations

import io
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_CENTER
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Flowable, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from api.outreach.notice import NoticeContent, pdf_texts

PDF_CONTENT_TYPE = "application/pdf"


def pdf_filename(content: NoticeContent) -> str:
    return f"notificacao-extrajudicial-{content.case_ref}.pdf"


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    # Paragraph reads a small markup language: everything from the case is escaped.
    return Paragraph(escape(text), style)


def render_notice_pdf(content: NoticeContent) -> bytes:
    """One or more A4 pages: title, parties, listings, the notice's paragraphs, signature."""
    styles = getSampleStyleSheet()
    body = ParagraphStyle("corpo", parent=styles["Normal"], fontSize=10.5, leading=14)
    small = ParagraphStyle("pequeno", parent=body, fontSize=8.5, leading=11)
    title = ParagraphStyle(
        "titulo", parent=styles["Title"], fontSize=16, leading=20, alignment=TA_CENTER
    )
    heading, paragraphs, closing = pdf_texts(content)
    buffer = io.BytesIO()
    document = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
        title=f"Notificação extrajudicial {content.case_ref}",
        author=content.firm_name,
        subject=f"Caso {content.case_ref} — marca {content.brand}",
    )
    recipient = content.recipient_name + (f" ({content.document})" if content.document else "")
    story: list[Flowable] = [
        _p(content.firm_name, small),
        Spacer(1, 4 * mm),
        _p(heading, title),
        Spacer(1, 2 * mm),
        _p(f"Referência do caso: {content.case_ref}", body),
        _p(f"Data: {content.notice_date}", body),
        _p(f"Destinatário: {recipient}", body),
        _p(f"Marca: {content.brand} (titular: {content.brand_legal_name})", body),
        _p(f"Prazo para resposta: {content.deadline}", body),
        _p(f"Valor indicado para acordo: {content.amount}", body),
        Spacer(1, 4 * mm),
    ]
    rows = [[_p("Marketplace", small), _p("Anúncio", small)]] + [
        [_p(line.marketplace, small), _p(line.url, small)] for line in content.listings
    ]
    table = Table(rows, colWidths=[35 * mm, 135 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ]
        )
    )
    story += [table, Spacer(1, 4 * mm)]
    for paragraph in paragraphs:
        story += [_p(paragraph, body), Spacer(1, 2.5 * mm)]
    story += [
        Spacer(1, 4 * mm),
        _p("Atenciosamente,", body),
        _p(content.firm_name, body),
        _p(f"{content.firm_site} | {content.firm_phone} | {content.firm_email}", small),
        Spacer(1, 6 * mm),
        _p(closing, small),
    ]
    document.build(story)
    return buffer.getvalue()
