"""Hostile content as ingestion really stores it, then shown by the panel: a malicious .eml
through the e-mail ingestion (`do_ingest_email`, what the IMAP poller calls with the raw bytes)
and a malicious WhatsApp message through the signed Twilio webhook. The conversation page must
carry no active content from either: no script but the panel's own, no event handler, no
javascript:/data: URL, no remote image, no frame, no foreign form, no refresh."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.channels.email.ingest import do_ingest_email
from api.conversations.models import Attachment, Channel, Message
from api.db import unit_of_work
from tests.factories import make_case, make_infringer
from tests.fixtures.twilio.harness import MESSAGE_PATH, load_form, new_phone, new_sid, twilio_stack
from tests.integration.test_panel import login, panel_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

EML = Path(__file__).resolve().parents[1] / "fixtures" / "email" / "xss_attack.eml"
URL_ATTRIBUTES = {"href", "src", "action", "data", "formaction", "xlink:href", "poster", "srcset"}
FORBIDDEN_TAGS = {"iframe", "object", "embed", "base", "meta", "style", "svg", "frame"}


class Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def active_content(html: str) -> list[str]:
    """Everything on the page that could run or leak, beyond the panel's own markup."""
    page = Elements()
    page.feed(html)
    found = [f"inline script {text[:60]!r}" for text in page.script_text]
    for tag, attrs in page.tags:
        if tag == "meta" and "http-equiv" not in attrs:
            continue  # the panel's own charset, viewport and htmx-config
        if tag in FORBIDDEN_TAGS:
            found.append(f"<{tag} {attrs}>")
        if tag == "script" and not attrs.get("src", "").startswith("/painel/static/"):
            found.append(f"<script {attrs}>")
        if tag == "form" and not attrs.get("action", "").startswith("/painel/"):
            found.append(f"<form {attrs}>")
        if tag == "img" and not attrs.get("src", "/painel/").startswith("/painel/"):
            found.append(f"<img {attrs}>")
        for name, value in attrs.items():
            if name.startswith("on") or (name == "style" and "url(" in value):
                found.append(f"<{tag} {name}={value!r}>")
            scheme = value.strip().lower()
            favicon = (tag, name, value) == ("link", "href", "data:,")  # the panel's own
            if (
                name in URL_ATTRIBUTES
                and scheme.startswith(("javascript:", "data:", "vbscript:"))
                and not favicon
            ):
                found.append(f"<{tag} {name}={value!r}>")
    return found


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def ingest_hostile_mail() -> tuple[int, int]:
    """The fixture .eml, from a known infringer's address, through the real ingestion."""
    address = f"vendas{uuid.uuid4().hex[:8]}@lojaxss.com.br"
    raw = (
        EML.read_bytes()
        .replace(b"vendas@lojaxss.com.br", address.encode())
        .replace(b"xss-attack-0001", uuid.uuid4().hex.encode())
    )
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(address,))
        await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
    async with unit_of_work() as session:
        ingested = await do_ingest_email(session, raw)
    assert ingested.conversation_id is not None and ingested.message_id is not None
    return ingested.conversation_id, ingested.message_id


async def test_a_hostile_email_is_shown_without_active_content(client: httpx.AsyncClient) -> None:
    conversation_id, _ = await ingest_hostile_mail()
    await login(client)

    page = await client.get(f"/painel/conversas/{conversation_id}")

    assert page.status_code == 200
    assert active_content(page.text) == []
    # What the analyst must still read: the text, the link (made safe) and the formatting.
    assert "Prezados," in page.text and "<b>Jurídico</b>" in page.text
    assert (
        '<a href="https://lojaxss.com.br/anuncio" rel="noopener noreferrer nofollow">' in page.text
    )
    # Hostile headers are shown as text, escaped.
    assert "&lt;img src=x onerror=alert(&#39;subj&#39;)&gt;" in page.text
    assert "&lt;script&gt;alert(&#39;from&#39;)&lt;/script&gt;" in page.text


async def test_hostile_files_of_a_mail_are_never_rendered_by_the_panel(
    client: httpx.AsyncClient,
) -> None:
    _, message_id = await ingest_hostile_mail()
    await login(client)
    # An HTML part referenced as an inline image is not served as one.
    inline = await client.get(f"/painel/mensagens/{message_id}/inline/pagina@lojaxss")
    assert inline.status_code == 404
    async with unit_of_work() as session:
        files = (
            await session.scalars(sa.select(Attachment).where(Attachment.message_id == message_id))
        ).all()
    assert files and all(f.content_type == "text/html" for f in files)
    for attachment in files:
        served = await client.get(f"/painel/anexos/{attachment.id}")
        assert served.status_code == 200
        assert served.headers["content-disposition"].startswith("attachment;")
        assert served.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in served.headers["content-security-policy"]


async def test_a_hostile_whatsapp_message_is_shown_without_active_content() -> None:
    body = (
        "<script>alert('wa')</script><img src=x onerror=alert('wa')>"
        "<a href=\"javascript:alert('wa')\">pagar</a> quero negociar"
    )
    sid = new_sid()
    async with twilio_stack() as stack:
        form = load_form(
            "message_text",
            MessageSid=sid,
            From=f"whatsapp:{new_phone()}",
            Body=body,
            ProfileName="<svg onload=alert('perfil')>",
        )
        assert (await stack.post_signed(MESSAGE_PATH, form)).status_code == 200
        async with unit_of_work() as session:
            message = await session.scalar(
                sa.select(Message).where(
                    Message.channel == Channel.WHATSAPP, Message.provider_id == sid
                )
            )
            assert message is not None and message.text.startswith("<script>")
            conversation_id = message.conversation_id
        panel = httpx.AsyncClient(base_url=stack.service_url, timeout=20)
        async with panel:
            await login(panel)
            page = await panel.get(f"/painel/conversas/{conversation_id}")
    assert page.status_code == 200
    assert active_content(page.text) == []
    assert "&lt;script&gt;alert(&#39;wa&#39;)&lt;/script&gt;" in page.text


@pytest.mark.parametrize(
    "hostile",
    [
        "<script>alert(1)</script>",
        "<img onerror=alert(1)>",
        "<a href=' JavaScript:x'>a</a>",
        "<a href='data:text/html,x'>a</a>",
        "<iframe></iframe>",
        "<meta http-equiv=refresh content='0;url=https://evil'>",
        "<form action=https://evil></form>",
        "<img src=https://tracker/p.gif>",
        "<div style='background:url(javascript:x)'></div>",
        "<svg></svg>",
    ],
)
def test_the_check_finds_active_content_where_there_is_some(hostile: str) -> None:
    assert active_content(hostile) != []
    assert active_content('<p>ok <a href="https://x">x</a><img src="/painel/a/1"></p>') == []
