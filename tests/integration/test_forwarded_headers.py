"""X-Forwarded-* are believed only from TRUSTED_PROXIES: a signature Twilio made for another host
cannot be replayed at us by naming that host in X-Forwarded-Host."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from api.app import create_app
from api.config import get_settings
from api.devtools.twilio_simulator import sign
from api.web.proxies import TrustedProxyMiddleware, forwarded_headers_trusted
from tests.fixtures.twilio.harness import AUTH_TOKEN, STATUS_PATH, load_form, new_sid

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

PUBLIC = "https://crm.exemplo.com.br"
OTHER_HOST = "attacker.example"
PROXY = "10.1.2.3"
STRANGER = "203.0.113.9"


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PUBLIC_BASE_URL", PUBLIC)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TRUSTED_PROXIES", "10.1.0.0/16, 192.0.2.1")
    get_settings.cache_clear()
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


async def _client(peer: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(), client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client:
        yield client


@pytest.fixture
async def from_stranger(configured: None) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(STRANGER):
        yield client


@pytest.fixture
async def from_proxy(configured: None) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(PROXY):
        yield client


async def _post_status(client: httpx.AsyncClient, *, signed_for: str) -> httpx.Response:
    """An unknown message's status callback: 200 once the signature holds, and changes nothing."""
    form = load_form("status_delivered", MessageSid=new_sid())
    return await client.post(
        STATUS_PATH,
        data=form,
        headers={
            "X-Twilio-Signature": sign(signed_for + STATUS_PATH, form, AUTH_TOKEN),
            "X-Forwarded-Host": OTHER_HOST,
            "X-Forwarded-Proto": "https",
        },
    )


async def test_a_signature_for_another_host_is_refused_from_an_untrusted_client(
    from_stranger: httpx.AsyncClient,
) -> None:
    response = await _post_status(from_stranger, signed_for=f"https://{OTHER_HOST}")
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "permission_denied"
    # The public URL itself still works from anyone (X-Forwarded-* are simply ignored).
    assert (await _post_status(from_stranger, signed_for=PUBLIC)).status_code == 200


async def test_the_name_a_trusted_proxy_forwards_is_honoured(
    from_proxy: httpx.AsyncClient,
) -> None:
    response = await _post_status(from_proxy, signed_for=f"https://{OTHER_HOST}")
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "seen"),
    [
        (PROXY, "198.51.100.7, 10.1.9.9", "198.51.100.7"),  # right-most hop not a proxy
        (PROXY, "1.1.1.1, 198.51.100.7", "198.51.100.7"),  # a client-supplied hop is ignored
        (STRANGER, "198.51.100.7", STRANGER),  # not from a proxy: the header is ignored
        (PROXY, "10.1.9.9, 10.1.2.2", "10.1.9.9"),  # only proxies: the first hop
        (PROXY, "not-an-address", PROXY),  # nothing usable: the peer stays the client
    ],
)
async def test_the_client_address_comes_from_x_forwarded_for_only_through_a_proxy(
    configured: None, peer: str, forwarded_for: str, seen: str
) -> None:
    async def who(request: Request) -> PlainTextResponse:
        client = request.client.host if request.client else "?"
        trusted = forwarded_headers_trusted(request)
        return PlainTextResponse(f"{client} {trusted} {request.url.scheme}")

    app = TrustedProxyMiddleware(Starlette(routes=[Route("/", who)]))
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        response = await client.get(
            "/", headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"}
        )
    scheme = "https" if peer == PROXY else "http"
    assert response.text == f"{seen} {peer == PROXY} {scheme}"
