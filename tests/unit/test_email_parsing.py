"""Parsing and classifying the .eml corpus: quote stripping, charsets, HTML, attachments, auto-
replies and delivery reports."""

from __future__ import annotations

import pytest

from api.channels.email.classify import BounceAction, MailKind, classify
from api.channels.email.parser import (
    content_hash,
    html_to_text,
    parse_email,
    sanitize_html,
    strip_quoted,
)
from tests.integration.email_servers import corpus, load_eml, make_mail

pytestmark = pytest.mark.unit

# What the bot must read (present) and must not (quoted history, forwarded text, sign-offs).
STRIPPING = {
    "gmail_reply_pt.eml": (
        ["Já retirei os anúncios do Mercado Livre", "parcelar em 3 vezes"],
        ["escreveu:", "Identificamos anúncios", "> ", "Referência do caso"],
    ),
    "outlook_reply_pt.eml": (
        ["Não reconheço essa venda", "Casa da Maria"],
        ["De:", "Enviado:", "Assunto:", "Identificamos anúncios", "____"],
    ),
    "iphone_reply.eml": (
        ["vou verificar com meu contador e retorno até sexta"],
        ["Enviado do meu iPhone", "escreveu:", "Segue a notificação"],
    ),
    "html_only.eml": (
        ["removidos", "https://shopee.com.br/Tenis-Aurora-i.123456.7890123", "Aguardo retorno"],
        ["Segue notificação", "document.location", "<b>"],
    ),
    "latin1_qp.eml": (
        ["Não concordo com a notificação", "CNPJ 11.222.333/0001-81", "José Antônio Ferreira"],
        ["=E3", "Ã£"],
    ),
    "forwarded.eml": (
        ["queria confirmar se é verdadeira ou se é golpe"],
        ["Forwarded message", "Identificamos o anúncio", "Prezado(a) Lucas"],
    ),
    "lawyer_formal_cc.eml": (
        ["Na qualidade de advogada", "toda comunicação futura seja dirigida"],
        ["AVISO DE CONFIDENCIALIDADE"],
    ),
    "pdf_attachment.eml": (["comprovante do pagamento da primeira parcela"], []),
    "inline_cid.eml": (["o anuncio foi pausado"], []),
}


@pytest.mark.parametrize("name", sorted(STRIPPING))
def test_the_bot_reads_only_the_new_text(name: str) -> None:
    parsed = parse_email(load_eml(name))
    present, absent = STRIPPING[name]
    for text in present:
        assert text in parsed.reply_text, f"{name}: missing {text!r} in {parsed.reply_text!r}"
    for text in absent:
        assert text not in parsed.reply_text, f"{name}: {text!r} should be stripped"


@pytest.mark.parametrize("name", ["gmail_reply_pt.eml", "outlook_reply_pt.eml", "forwarded.eml"])
def test_the_full_original_is_kept_for_the_analyst(name: str) -> None:
    parsed = parse_email(load_eml(name))
    assert len(parsed.text) > len(parsed.reply_text)
    assert "Identificamos" in parsed.text


def test_every_corpus_mail_parses_with_sender_and_id() -> None:
    for name in corpus():
        parsed = parse_email(load_eml(name))
        assert parsed.message_id, name
        assert parsed.from_address and "@" in parsed.from_address, name
        assert parsed.subject, name


def test_headers_are_decoded_and_threading_ids_normalized() -> None:
    gmail = parse_email(load_eml("gmail_reply_pt.eml"))
    assert gmail.subject == "Re: Notificação extrajudicial [INF-2026-000123]"
    assert gmail.from_name == "João Silva"
    assert gmail.message_id == "CAH8yC8k3QeXk2=vJp1LrT5mZ9w@mail.gmail.com"
    assert gmail.in_reply_to == ("tt.41.7f3a9c2e51d04b1a8c7e@tratativa.example",)

    latin1 = parse_email(load_eml("latin1_qp.eml"))
    assert latin1.subject == "Contestação da notificação"
    assert latin1.from_name == "José Antônio Ferreira"

    lawyer = parse_email(load_eml("lawyer_formal_cc.eml"))
    assert lawyer.subject == "Notificação Extrajudicial - Ref. INF-2026-000131 - Resposta"
    assert lawyer.cc == ("financeiro@comercialbrisa.com.br", "estagiario@mendesadvocacia.adv.br")
    assert lawyer.in_reply_to == () and lawyer.references == ()


def test_thread_ids_put_in_reply_to_first_then_newest_references() -> None:
    raw = make_mail(
        sender="a@loja.com.br",
        subject="Re: x",
        body="ok",
        message_id="new@loja.com.br",
        headers={"In-Reply-To": "<c@x>", "References": "<a@x> <b@x> <c@x>"},
    )
    assert parse_email(raw).thread_ids == ("c@x", "b@x", "a@x")


def test_windows_1252_sent_as_latin1_keeps_its_quotes() -> None:
    body = "Loja “Casa” – produtos originais".encode("cp1252")
    raw = (
        b"From: a@b.com.br\r\nSubject: x\r\nMessage-ID: <w@b>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body
    )
    assert parse_email(raw).text == "Loja “Casa” – produtos originais"


def test_unknown_charset_does_not_lose_the_text() -> None:
    raw = (
        b"From: a@b.com.br\r\nSubject: x\r\nMessage-ID: <u@b>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=x-unknown-charset\r\n\r\nN\xc3\xa3o tenho"
    )
    assert parse_email(raw).text == "Não tenho"


def test_html_only_mail_becomes_text_and_its_html_is_sanitized() -> None:
    parsed = parse_email(load_eml("html_only.eml"))
    assert parsed.html is not None
    assert "Os anúncios abaixo já foram removidos:" in parsed.text
    assert "> Prezado(a) Pedro," in parsed.text  # the blockquote, marked as quoted
    safe = sanitize_html(parsed.html)
    assert "<script" not in safe and "document.cookie" not in safe
    assert "onerror" not in safe
    assert "tracker.example" not in safe  # remote images (tracking pixels) are dropped
    assert 'href="https://shopee.com.br/Tenis-Aurora-i.123456.7890123"' in safe


def test_gmail_html_quote_is_stripped_like_plain_text() -> None:
    parsed = parse_email(load_eml("gmail_reply_pt.eml"))
    assert parsed.html is not None
    text = strip_quoted(html_to_text(parsed.html))
    assert "Já retirei os anúncios" in text
    assert "Identificamos" not in text


def test_attachments_inline_images_and_filenames() -> None:
    pdf = parse_email(load_eml("pdf_attachment.eml"))
    assert [(a.filename, a.content_type, a.inline) for a in pdf.attachments] == [
        ("comprovante_pagamento_março.pdf", "application/pdf", False)
    ]
    assert pdf.attachments[0].data.startswith(b"%PDF-1.4")

    cid = parse_email(load_eml("inline_cid.eml"))
    assert {(a.content_id, a.inline) for a in cid.attachments} == {
        ("ii_m7x2k9ab0", True),
        ("logo.rc@rcimports", True),
    }
    assert cid.html is not None
    assert 'src="cid:ii_m7x2k9ab0"' in sanitize_html(cid.html)


def test_content_hash_ignores_delivery_trace_headers() -> None:
    raw = make_mail(sender="a@b.com.br", subject="sem id", body="texto")
    traced = b"Received: from mx by mx2; Tue, 3 Mar 2026\r\nDelivered-To: x@y.com\r\n" + raw
    assert content_hash(raw) == content_hash(traced)
    assert content_hash(raw) != content_hash(raw.replace(b"texto", b"outro"))


@pytest.mark.parametrize(
    "headers, subject",
    [
        ({"Auto-Submitted": "auto-replied"}, "Re: caso"),
        ({"Auto-Submitted": "auto-generated"}, "Aviso"),
        ({"X-Autoreply": "yes"}, "Re: caso"),
        ({"X-Autorespond": "Ausente"}, "Re: caso"),
        ({"Precedence": "bulk"}, "Novidades"),
        ({"Precedence": "list"}, "Digest"),
        ({"Precedence": "junk"}, "Promo"),
        ({"X-Loop": "loja@x.com"}, "Re: caso"),
        ({}, "Resposta automática: Notificação"),
        ({}, "Automatic reply: Notificação"),
        ({}, "Out of Office: Notificação"),
        ({}, "Fora do escritório: Notificação"),
    ],
)
def test_auto_replies_are_recognised(headers: dict[str, str], subject: str) -> None:
    raw = make_mail(sender="a@loja.com.br", subject=subject, body="x", headers=headers)
    assert classify(parse_email(raw)).kind is MailKind.AUTO_REPLY


@pytest.mark.parametrize(
    "headers, subject",
    [
        ({"Auto-Submitted": "no"}, "Re: Notificação"),
        ({}, "Re: Resposta sobre a notificação"),
        ({"Precedence": "first-class"}, "Dúvida"),
    ],
)
def test_people_are_not_auto_replies(headers: dict[str, str], subject: str) -> None:
    raw = make_mail(sender="a@loja.com.br", subject=subject, body="x", headers=headers)
    classification = classify(parse_email(raw))
    assert classification.kind is MailKind.REPLY
    assert classification.answerable


def test_out_of_office_fixture_is_an_auto_reply() -> None:
    classification = classify(parse_email(load_eml("out_of_office.eml")))
    assert classification.kind is MailKind.AUTO_REPLY
    assert classification.reason == "cabeçalho Auto-Submitted: auto-replied"
    assert not classification.answerable


def test_dsn_is_a_bounce_with_the_original_message_id_and_diagnostic() -> None:
    classification = classify(parse_email(load_eml("dsn_bounce.eml")))
    assert classification.kind is MailKind.BOUNCE
    report = classification.bounce
    assert report is not None
    assert report.original_message_ids == ("tt.77.b1c2d3e4f5a6b7c8d9e0@tratativa.example",)
    assert report.recipients == ("vendas@lojainexistente.com.br",)
    assert report.action is BounceAction.FAILED and report.failed
    assert report.status == "5.1.1"
    assert report.diagnostic is not None and "User unknown" in report.diagnostic
