"""What the public side (notice and payment pages, /media for the provider) sends back: files with
any name, and the panel's security headers on pages that show a name, CPF/CNPJ and amounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import unquote

import httpx
import pytest

from api.app import create_app
from api.db import unit_of_work
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.timeline.service import Actor
from api.web.security import CSP
from tests.factories import make_brand, make_case
from tests.integration.test_handoff_api import conversation_for_case, login

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

NAMES = ["Acordo – Aurora.pdf", "relatório✓€.pdf", 'a"b\r\nSet-Cookie: x=1.pdf']


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _filename_star(header: str) -> str:
    (encoded,) = [p.strip() for p in header.split(";") if p.strip().startswith("filename*=")]
    return unquote(encoded.removeprefix("filename*=UTF-8''"))


@pytest.mark.parametrize("name", NAMES[:2])
async def test_media_with_a_non_latin1_filename_is_served_to_the_provider(
    client: httpx.AsyncClient, name: str
) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + name.encode()
    uploaded = await client.post(
        "/api/v1/attachments", files={"file": ("x.pdf", pdf, "application/pdf")}, headers=ana
    )
    assert uploaded.status_code == 201, uploaded.text
    sha256 = uploaded.json()["sha256"]
    sent = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Segue.", "attachments": [{"sha256": sha256, "filename": name}]},
        headers=ana,
    )
    assert sent.status_code == 201, sent.text

    media = await client.get(f"/media/{sha256}")

    assert media.status_code == 200, media.text
    assert media.content == pdf
    assert _filename_star(media.headers["content-disposition"]) == name
    assert media.headers["x-content-type-options"] == "nosniff"
    assert media.headers["content-security-policy"] == "default-src 'none'; sandbox"


def _assert_panel_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "same-origin"


async def test_notice_and_payment_pages_send_the_panels_security_headers(
    client: httpx.AsyncClient,
) -> None:
    async with unit_of_work() as session:
        brand = await make_brand(session)
        case = await make_case(session, brand=brand)
        payment = await do_issue_payment_request(
            session,
            case=case,
            brand=brand,
            amount=Decimal("1500.00"),
            installments=2,
            provider=get_payment_provider(),
            actor=Actor.system(),
        )
        notice_token, payment_token = case.notice_token, payment.public_token

    notice = await client.get(f"/notificacao/{notice_token}")
    paying = await client.get(f"/pagamento/{payment_token}")

    for page in (notice, paying):
        assert page.status_code == 200, page.text
        _assert_panel_headers(page)
        # The CSP allows no inline style: the pages use their one style sheet.
        assert "<style" not in page.text and 'href="/publico/estilo.css"' in page.text
    assert "R$ 1.500,00" in paying.text
    sheet = await client.get("/publico/estilo.css")
    assert sheet.status_code == 200
    assert sheet.headers["content-type"].startswith("text/css")
    assert "max-width:760px" in sheet.text
