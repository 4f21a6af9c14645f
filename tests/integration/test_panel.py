"""The analyst panel over HTTP (ASGI client, real database): session cookie, CSRF, inbox,
conversation page (escaping, sanitizing), actions through the handoff services, files."""

from __future__ import annotations

import datetime as dt
import re
import struct
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.conversations.inbound import InboundAttachment, InboundMessage, do_receive_message
from api.conversations.models import Attachment, Channel, Conversation, Holder, Message
from api.db import unit_of_work, utcnow
from api.handoff.service import do_request_handoff
from api.outbox.models import OutboxItem
from api.panel import install_panel
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(30_000_000, 99_999_999, 104723))

XSS_TEXT = "Segue resposta <script>alert(1)</script> e <img src=x onerror=alert(1)> fim"
XSS_HTML = (
    "<p>Prezados,</p><script>alert(1)</script><img src=x onerror=alert(1)>"
    '<a href="javascript:alert(1)">clique</a><p onclick="alert(1)">Att.</p>'
)
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def panel_app() -> FastAPI:
    app = create_app()
    if not any(getattr(route, "path", "") == "/painel/login" for route in app.routes):
        install_panel(app)  # until api/app.py mounts the panel itself
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def csrf_of(html: str) -> str:
    found = _CSRF_RE.search(html)
    assert found is not None, "page has no CSRF field"
    return found.group(1)


@dataclass
class LoggedIn:
    analyst_id: int
    email: str
    csrf: str


async def login(client: httpx.AsyncClient, role: Role = Role.ANALYST) -> LoggedIn:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        analyst_id, email = analyst.id, analyst.email
    page = await client.get("/painel/login")
    response = await client.post(
        "/painel/login",
        data={"email": email, "senha": "correct-horse", "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303, response.text
    inbox = await client.get("/painel/caixa")
    assert inbox.status_code == 200
    return LoggedIn(analyst_id, email, csrf_of(inbox.text))


def png_bytes() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 4 for _ in range(4))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def whatsapp_conversation(*, escalate: str | None = "pediu para falar com uma pessoa") -> int:
    """A WhatsApp conversation on a case, with an inbound photo, waiting for a human."""
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="Maria Souza", phones=(phone,))
        await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text="segue o comprovante",
                received_at=utcnow() - dt.timedelta(minutes=5),
                raw={},
                attachments=(InboundAttachment("image/png", png_bytes(), "comprovante.png"),),
            ),
        )
        received.message.intent = "enviar_comprovante"
        received.message.intent_confidence = 0.87
        if escalate:
            await do_request_handoff(
                session, conversation=received.conversation, reason=escalate, actor=Actor.bot()
            )
        return received.conversation.id


async def email_conversation_with_xss() -> tuple[int, int]:
    address = f"juridico{next(_seq)}@lojaexemplo.com.br"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(address,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@lojaexemplo.com.br>",
                sender=address,
                text=XSS_TEXT,
                received_at=utcnow(),
                raw={},
                subject="Re: Notificação <script>alert(1)</script>",
                meta={
                    "html": XSS_HTML,  # the key e-mail ingestion writes (unsanitized here)
                    "from": address,
                    "from_name": "Dr. <b>Advogado</b>",
                    "to": ["atendimento@tratativa.example"],
                    "cc": ["socio@lojaexemplo.com.br"],
                },
                attachments=(
                    InboundAttachment("text/html", b"<script>alert(1)</script>", "pagina.html"),
                ),
                case_hint=case.id,
            ),
        )
        await do_request_handoff(
            session, conversation=received.conversation, reason="advogado", actor=Actor.bot()
        )
        return received.conversation.id, received.message.id


async def test_login_sets_an_httponly_session_cookie(client: httpx.AsyncClient) -> None:
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        email = analyst.email
    page = await client.get("/painel/login")
    assert page.status_code == 200 and "Entrar no painel" in page.text
    token = csrf_of(page.text)

    wrong = await client.post(
        "/painel/login", data={"email": email, "senha": "errada123", "csrf_token": token}
    )
    assert wrong.status_code == 401
    assert "E-mail ou senha incorretos." in wrong.text
    assert "tratativa_painel=" not in wrong.headers.get("set-cookie", "")

    response = await client.post(
        "/painel/login",
        data={"email": email, "senha": "correct-horse", "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/painel/caixa"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("tratativa_painel=")
    )
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=lax" in cookie.lower() and "path=/painel" in cookie.lower()
    assert "secure" not in attributes  # PUBLIC_BASE_URL is http:// in tests

    # The panel cookie is not an API token.
    value = cookie.split(";")[0].split("=", 1)[1]
    api = await client.get("/api/v1/handoffs", headers={"Authorization": f"Bearer {value}"})
    assert api.status_code == 401


async def test_login_without_csrf_is_refused(client: httpx.AsyncClient) -> None:
    async with unit_of_work() as session:
        email = (await make_analyst(session)).email
    response = await client.post("/painel/login", data={"email": email, "senha": "correct-horse"})
    assert response.status_code == 403
    assert "CSRF" in response.text or "Formulário de login expirado" in response.text


async def test_post_without_csrf_is_403_and_changes_nothing(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation()
    me = await login(client)

    missing = await client.post(f"/painel/conversas/{conversation_id}/assumir")
    assert missing.status_code == 403
    assert "text/html" in missing.headers["content-type"]
    assert "CSRF" in missing.text
    forged = await client.post(
        f"/painel/conversas/{conversation_id}/assumir", data={"csrf_token": "forjado"}
    )
    assert forged.status_code == 403
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.holder is Holder.WAITING_HUMAN

    by_header = await client.post(
        f"/painel/conversas/{conversation_id}/assumir", headers={"X-CSRF-Token": me.csrf}
    )
    assert by_header.status_code == 303
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.analyst_id == me.analyst_id


async def test_inbox_lists_a_waiting_conversation(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation(escalate="quer negociar o valor")
    await login(client)

    inbox = await client.get("/painel/caixa")
    assert inbox.status_code == 200
    assert f'id="conversa-{conversation_id}"' in inbox.text
    assert "quer negociar o valor" in inbox.text
    assert "Aguardando" in inbox.text and "WhatsApp" in inbox.text
    row = re.search(rf'id="conversa-{conversation_id}".*?</tr>', inbox.text, re.S)
    assert row is not None and "INF-" in row.group(0) and "min" in row.group(0)

    rows = await client.get("/painel/caixa/linhas", params={"aba": "aguardando"})
    assert f'id="conversa-{conversation_id}"' in rows.text
    only_email = await client.get("/painel/caixa", params={"canal": "email"})
    assert f'id="conversa-{conversation_id}"' not in only_email.text
    mine = await client.get("/painel/caixa", params={"aba": "minhas"})
    assert f'id="conversa-{conversation_id}"' not in mine.text


async def test_conversation_page_escapes_and_sanitizes_email(client: httpx.AsyncClient) -> None:
    conversation_id, _message_id = await email_conversation_with_xss()
    await login(client)

    page = await client.get(f"/painel/conversas/{conversation_id}")
    assert page.status_code == 200
    html = page.text
    assert "<script>alert(1)</script>" not in html
    assert "<img src=x onerror" not in html
    assert "onerror=" not in html.replace("onerror=alert(1)&gt;", "")
    assert 'onclick="alert(1)"' not in html
    assert "javascript:alert" not in html
    assert "<b>Advogado</b>" not in html
    # What the infringer wrote is shown, as text.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Prezados," in html
    # Headers of the e-mail.
    assert "socio@lojaexemplo.com.br" in html and "Re: Notificação &lt;script&gt;" in html
    # Every script on the page is one of ours.
    assert re.findall(r"<script[^>]*>", html) == [
        '<script src="/painel/static/htmx.min.js" defer>',
        '<script src="/painel/static/painel.js" defer>',
    ]
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_anonymous_is_sent_to_the_login(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation()
    for path in ("/painel/caixa", f"/painel/conversas/{conversation_id}", "/painel/anexos/1"):
        response = await client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"].startswith("/painel/login?proximo=")
    post = await client.post(f"/painel/conversas/{conversation_id}/assumir")
    assert post.status_code == 303 and post.headers["location"] == "/painel/login"
    fragment = await client.get("/painel/caixa/linhas", headers={"HX-Request": "true"})
    assert fragment.headers["hx-redirect"].startswith("/painel/login")
    events = await client.get("/painel/events")
    assert events.status_code == 303
    # The API keeps answering JSON.
    api = await client.get("/api/v1/handoffs")
    assert api.status_code == 401 and api.json()["error"]["code"] == "authentication_required"


async def test_logout_and_a_deactivated_analyst_end_the_session(
    client: httpx.AsyncClient,
) -> None:
    from api.analysts.models import Analyst

    me = await login(client)
    out = await client.post("/painel/sair", data={"csrf_token": me.csrf})
    assert out.status_code == 303 and out.headers["location"] == "/painel/login"
    assert (await client.get("/painel/caixa")).status_code == 303

    me = await login(client)
    async with unit_of_work() as session:
        analyst = await session.get(Analyst, me.analyst_id)
        assert analyst is not None
        analyst.active = False
    bounced = await client.get("/painel/caixa")
    assert bounced.status_code == 303
    login_page = await client.get("/painel/login")
    assert login_page.status_code == 200 and "Entrar no painel" in login_page.text


async def test_login_redirects_only_inside_the_panel(client: httpx.AsyncClient) -> None:
    async with unit_of_work() as session:
        email = (await make_analyst(session)).email
    for target, expected in (
        ("/painel/casos/1", "/painel/casos/1"),
        ("https://evil.example/", "/painel/caixa"),
        ("//evil.example/painel/", "/painel/caixa"),
    ):
        client.cookies.clear()
        page = await client.get("/painel/login", params={"proximo": target})
        response = await client.post(
            "/painel/login",
            data={
                "email": email,
                "senha": "correct-horse",
                "csrf_token": csrf_of(page.text),
                "proximo": target,
            },
        )
        assert response.headers["location"] == expected


async def test_claim_reply_note_release_through_the_panel(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation()
    me = await login(client)
    base = f"/painel/conversas/{conversation_id}"

    page = await client.get(base)
    assert "Aguardando analista" in page.text and "Assumir conversa" in page.text
    assert "enviar_comprovante" in page.text and "87%" in page.text
    assert "Janela de 24 horas do WhatsApp" in page.text and "aberta até" in page.text

    early = await client.post(f"{base}/mensagens", data={"csrf_token": me.csrf, "texto": "oi"})
    assert early.status_code == 409 and "Assuma a conversa" in early.text

    assert (await client.post(f"{base}/assumir", data={"csrf_token": me.csrf})).status_code == 303
    sent = await client.post(
        f"{base}/mensagens", data={"csrf_token": me.csrf, "texto": "Podemos parcelar em 3x."}
    )
    assert sent.status_code == 303 and sent.headers["location"] == base
    note = await client.post(
        f"{base}/notas", data={"csrf_token": me.csrf, "texto": "Cliente educado."}
    )
    assert note.status_code == 303

    page = await client.get(base)
    assert "Com você" in page.text
    assert "Podemos parcelar em 3x." in page.text and "na fila de envio" in page.text
    assert "Nota interna de" in page.text and "Cliente educado." in page.text
    async with unit_of_work() as session:
        message = await session.scalar(
            sa.select(Message).where(
                Message.conversation_id == conversation_id,
                Message.text == "Podemos parcelar em 3x.",
            )
        )
        assert message is not None and message.analyst_id == me.analyst_id
        outbox = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message.id)
        )
        assert outbox is not None and outbox.payload["text"] == "Podemos parcelar em 3x."

    released = await client.post(
        f"{base}/devolver", data={"csrf_token": me.csrf, "nota": "Aceitou 3x de R$ 500,00."}
    )
    assert released.status_code == 303
    page = await client.get(base)
    assert "Com o bot" in page.text
    assert "Conversa devolvida ao bot. Aceitou 3x de R$ 500,00." in page.text
    async with unit_of_work() as session:
        handoffs = (
            await session.scalars(
                sa.select(TimelineEntry.actor_name).where(
                    TimelineEntry.conversation_id == conversation_id,
                    TimelineEntry.kind == EntryKind.HANDOFF,
                    TimelineEntry.analyst_id == me.analyst_id,
                )
            )
        ).all()
        assert len(handoffs) == 2  # claimed, released: with the analyst's name
        assert all(handoffs)


async def test_a_closed_window_allows_only_templates(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=30)
    me = await login(client)
    base = f"/painel/conversas/{conversation_id}"
    await client.post(f"{base}/assumir", data={"csrf_token": me.csrf})

    page = await client.get(base)
    assert "fechada" in page.text and "só modelos aprovados" in page.text
    assert re.search(r'<textarea id="texto"[^>]*disabled', page.text)
    refused = await client.post(f"{base}/mensagens", data={"csrf_token": me.csrf, "texto": "oi"})
    assert refused.status_code == 422 and "janela de 24 horas" in refused.text


async def test_template_preview_renders_case_variables_and_flags_missing_ones(
    client: httpx.AsyncClient,
) -> None:
    conversation_id, _ = await email_conversation_with_xss()
    await login(client)
    base = f"/painel/conversas/{conversation_id}/previa"

    ok = await client.get(base, params={"modelo": "primeiro_contato"})
    assert ok.status_code == 200
    assert 'class="previa"' in ok.text and "INF-" in ok.text and "Olá," in ok.text

    missing = await client.get(base, params={"modelo": "lembrete_prazo"})
    assert "Variáveis ausentes" in missing.text and "deadline" in missing.text
    assert 'name="var_deadline"' in missing.text
    filled = await client.get(base, params={"modelo": "lembrete_prazo", "var_deadline": "30/12"})
    assert "Variáveis ausentes" not in filled.text and "30/12" in filled.text


async def test_attachments_are_served_only_with_safe_headers(client: httpx.AsyncClient) -> None:
    conversation_id = await whatsapp_conversation()
    _, email_message_id = await email_conversation_with_xss()
    await login(client)
    async with unit_of_work() as session:
        image = await session.scalar(
            sa.select(Attachment)
            .join(Message, Message.id == Attachment.message_id)
            .where(Message.conversation_id == conversation_id)
        )
        html_file = await session.scalar(
            sa.select(Attachment).where(Attachment.message_id == email_message_id)
        )
        assert image is not None and html_file is not None
        image_id, html_id = image.id, html_file.id

    page = await client.get(f"/painel/conversas/{conversation_id}")
    assert f'<img class="midia" src="/painel/anexos/{image_id}"' in page.text

    served = await client.get(f"/painel/anexos/{image_id}")
    assert served.status_code == 200 and served.content == png_bytes()
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-disposition"].startswith("inline;")

    dangerous = await client.get(f"/painel/anexos/{html_id}")
    assert dangerous.headers["content-disposition"].startswith("attachment;")
    assert "sandbox" in dangerous.headers["content-security-policy"]

    missing = await client.get("/painel/anexos/999999999")
    assert missing.status_code == 404 and "Anexo 999999999 não encontrado." in missing.text


async def test_case_page_moves_status_and_lists_the_case(client: httpx.AsyncClient) -> None:
    async with unit_of_work() as session:
        case = await make_case(
            session,
            status=CaseStatus.EM_NEGOCIACAO,
            listings=("https://produto.mercadolivre.com.br/MLB-9", "javascript:alert(1)"),
        )
        case_id = case.id
    me = await login(client)

    page = await client.get(f"/painel/casos/{case_id}")
    assert page.status_code == 200
    assert "Em negociação" in page.text and "R$ 2.000,00" in page.text
    assert 'href="https://produto.mercadolivre.com.br/MLB-9"' in page.text
    assert 'href="javascript:' not in page.text
    assert 'value="ACORDO_PROPOSTO"' in page.text and 'value="PAGO"' not in page.text

    moved = await client.post(
        f"/painel/casos/{case_id}/status",
        data={"csrf_token": me.csrf, "status": "ACORDO_PROPOSTO", "motivo": ""},
    )
    assert moved.status_code == 303
    page = await client.get(f"/painel/casos/{case_id}")
    assert '<span class="status">Acordo proposto</span>' in page.text

    illegal = await client.post(
        f"/painel/casos/{case_id}/status", data={"csrf_token": me.csrf, "status": "PAGO"}
    )
    assert illegal.status_code == 409
    assert "Transição de status não permitida" in illegal.text
    assert f'href="/painel/casos/{case_id}"' in illegal.text


async def test_a_media_still_being_fetched_is_shown_as_on_its_way(
    client: httpx.AsyncClient,
) -> None:
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text="",
                received_at=utcnow(),
                raw={},
                attachments=(
                    InboundAttachment(
                        "image/jpeg",
                        None,
                        "foto.jpg",
                        source_url="https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1",
                    ),
                ),
            ),
        )
        await do_request_handoff(
            session, conversation=received.conversation, reason="foto", actor=Actor.bot()
        )
        conversation_id = received.conversation.id
    await login(client)

    page = await client.get(f"/painel/conversas/{conversation_id}")
    assert "Anexo a caminho (foto.jpg)" in page.text
    assert "Anexo recusado" not in page.text


async def test_status_changes_read_as_plain_labels_new_and_old_rows(
    client: httpx.AsyncClient,
) -> None:
    conversation_id = await whatsapp_conversation()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None and conversation.case_id is not None
        case_id = conversation.case_id
        # A row written before labels existed: the summary holds the raw codes.
        session.add(
            TimelineEntry(
                kind=EntryKind.STATUS_CHANGE,
                actor_kind=Actor.system().kind,
                actor_name="sistema",
                case_id=case_id,
                summary="Status: NOTIFICADO → EM_ATENDIMENTO",
                data={"from": "NOTIFICADO", "to": "EM_ATENDIMENTO", "reason": None},
            )
        )
    me = await login(client)
    moved = await client.post(
        f"/painel/casos/{case_id}/status",
        data={"status": "EM_NEGOCIACAO", "csrf_token": me.csrf},
    )
    assert moved.status_code == 303

    for url in (f"/painel/casos/{case_id}", f"/painel/conversas/{conversation_id}"):
        page = (await client.get(url)).text
        assert "Status: Notificado → Em atendimento" in page
        assert "Status: Em atendimento → Em negociação" in page
        assert "EM_ATENDIMENTO →" not in page and "→ EM_NEGOCIACAO" not in page
