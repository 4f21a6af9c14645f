"""A signed webhook's MediaUrl is fetched only from the provider: https on TWILIO_MEDIA_HOSTS at
public addresses (or the configured API origin, the simulator here), every redirect hop checked,
and the account's credentials sent to the API origin only."""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import trustme
import uvicorn

from api.channels.whatsapp_twilio import media as media_module
from api.channels.whatsapp_twilio.adapter import MediaRef
from api.channels.whatsapp_twilio.media import MediaUrlRefused, check_media_url, download_one
from api.config import get_settings
from api.devtools.twilio_simulator import SimConfig, SimulatorThread
from tests.fixtures.twilio.harness import ACCOUNT_SID, AUTH_TOKEN, free_socket

pytestmark = pytest.mark.integration

AUTH = (ACCOUNT_SID, AUTH_TOKEN)
BASIC = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
MEDIA_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/MM{'1' * 32}/Media/ME{'2' * 32}"
PDF = b"%PDF-1.4\n%%EOF\n"
# What the test's DNS says (the real resolver is used for anything not listed).
DNS = {
    "mms.twiliocdn.com": ["93.184.216.34"],
    "evil.twiliocdn.com": ["10.0.0.5"],
    "rebound.twiliocdn.com": ["93.184.216.34", "::ffff:127.0.0.1"],
}


@pytest.fixture
def real_twilio(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings as in production: the API at api.twilio.com, the default media hosts."""
    monkeypatch.delenv("TWILIO_API_BASE_URL", raising=False)
    monkeypatch.delenv("TWILIO_MEDIA_HOSTS", raising=False)
    get_settings.cache_clear()
    real_resolve = media_module._resolve

    async def resolve(host: str, port: int) -> list[str]:
        return DNS[host] if host in DNS else await real_resolve(host, port)

    monkeypatch.setattr(media_module, "_resolve", resolve)
    yield
    monkeypatch.undo()
    get_settings.cache_clear()


class Recorder:
    """A transport that answers like Twilio (API → 307 to the CDN) and records every request."""

    def __init__(self, redirect_to: str) -> None:
        self.redirect_to = redirect_to
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.host == "api.twilio.com":
            return httpx.Response(307, headers={"location": self.redirect_to})
        return httpx.Response(200, content=PDF, headers={"content-type": "application/pdf"})

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


async def _fetch(http: httpx.AsyncClient, url: str) -> tuple[bytes | None, str | None, bool]:
    got = await download_one(
        http,
        MediaRef(index=0, url=url, content_type="application/pdf"),
        auth=AUTH,
        max_bytes=1 << 20,
        message_sid="MM" + "1" * 32,
    )
    return got.data, got.refused_reason, got.retryable


async def test_credentials_go_to_the_api_only_and_the_cdn_hop_is_fetched_without_them(
    real_twilio: None,
) -> None:
    recorder = Recorder("https://mms.twiliocdn.com/AC/abc?sig=1")
    async with recorder.client() as http:
        data, reason, _ = await _fetch(http, "https://api.twilio.com" + MEDIA_PATH)
    assert (data, reason) == (PDF, None)
    api, cdn = recorder.requests
    assert api.url.host == "api.twilio.com" and api.headers["authorization"] == BASIC
    # The CDN hop goes to the address that was checked, named in Host and SNI, without auth.
    assert cdn.url.host == "93.184.216.34" and "authorization" not in cdn.headers
    assert cdn.headers["host"] == "mms.twiliocdn.com"
    assert cdn.extensions["sni_hostname"] == "mms.twiliocdn.com"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8000/health", "só https"),
        ("http://api.twilio.com" + MEDIA_PATH, "só https"),
        ("https://evil.example/x.jpg", "host não permitido (evil.example)"),
        ("https://127.0.0.1/x.jpg", "host não permitido (127.0.0.1)"),
        ("https://api.twilio.com.evil.example/x", "host não permitido"),
        ("https://evil.twiliocdn.com/x", "aponta para endereço interno (10.0.0.5)"),
        ("https://rebound.twiliocdn.com/x", "aponta para endereço interno (::ffff:127.0.0.1)"),
        (f"https://{ACCOUNT_SID}:x@api.twilio.com/x", "URL com credenciais"),
    ],
)
async def test_a_media_url_off_the_provider_is_refused_before_any_request(
    real_twilio: None, url: str, reason: str
) -> None:
    recorder = Recorder("https://mms.twiliocdn.com/x")
    async with recorder.client() as http:
        data, refused, retryable = await _fetch(http, url)
    assert data is None and refused is not None and reason in refused
    assert retryable is False  # a refused URL is final
    assert recorder.requests == []


@pytest.mark.parametrize(
    "redirect_to",
    [
        "http://127.0.0.1:8000/health",
        "https://169.254.169.254/latest/meta-data/",
        "https://evil.twiliocdn.com/x",
        "https://attacker.example/collect",
    ],
)
async def test_a_redirect_to_a_private_or_foreign_address_is_not_followed(
    real_twilio: None, redirect_to: str
) -> None:
    recorder = Recorder(redirect_to)
    async with recorder.client() as http:
        data, refused, retryable = await _fetch(http, "https://api.twilio.com" + MEDIA_PATH)
    assert data is None and refused is not None
    assert refused.startswith("endereço de mídia recusado")
    assert retryable is False
    assert [r.url.host for r in recorder.requests] == ["api.twilio.com"]


async def test_check_media_url_raises_a_clear_non_retryable_error(real_twilio: None) -> None:
    with pytest.raises(MediaUrlRefused) as refused:
        await check_media_url(httpx.URL("http://127.0.0.1:8000/health"))
    assert refused.value.retryable is False
    assert refused.value.code == "media_url_refused"
    assert await check_media_url(httpx.URL("https://api.twilio.com" + MEDIA_PATH)) is True
    assert await check_media_url(httpx.URL("https://mms.twiliocdn.com/a")) is False


async def test_the_configured_simulator_origin_is_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with SimulatorThread(SimConfig(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN)) as sim:
        monkeypatch.setenv("TWILIO_API_BASE_URL", sim.url)
        get_settings.cache_clear()
        try:
            async with httpx.AsyncClient() as http:
                uploaded = await http.post(
                    f"{sim.url}/_sim/media",
                    json={
                        "content_type": "application/pdf",
                        "data_b64": base64.b64encode(PDF).decode(),
                    },
                )
                media = uploaded.json()
                data, reason, _ = await _fetch(http, media["url"])
                stats = (await http.get(f"{sim.url}/_sim/media/{media['id']}/stats")).json()
                # Another loopback port is not the provider: refused, never requested.
                other = sim.url.rsplit(":", 1)[0] + ":9/health"
                _, other_reason, _ = await _fetch(http, other)
        finally:
            monkeypatch.undo()
            get_settings.cache_clear()
    assert (data, reason) == (PDF, None)
    assert (stats["fetches"], stats["unauthorized"]) == (1, 0)
    assert other_reason is not None and "só https" in other_reason


async def test_a_cdn_hop_is_fetched_over_verified_tls_at_the_address_that_was_checked(
    real_twilio: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real TLS server with a certificate for mms.twiliocdn.com on a loopback port: the
    request goes to the checked address (not to a second DNS answer), with the host name in
    SNI and Host, and the certificate is verified against that name."""
    authority = trustme.CA()
    server_cert = authority.issue_cert("mms.twiliocdn.com")
    sock = free_socket()
    port = sock.getsockname()[1]

    async def cdn(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        host = dict(scope["headers"]).get(b"host", b"").decode()
        body = PDF if host == f"mms.twiliocdn.com:{port}" else b"wrong host " + host.encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    with server_cert.private_key_and_cert_chain_pem.tempfile() as pem:
        config = uvicorn.Config(
            cdn, log_level="warning", lifespan="off", ssl_certfile=pem, ssl_keyfile=pem
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), "the TLS server did not start"
            await asyncio.sleep(0.01)
        answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a second lookup would be rebound

        async def resolve(host: str, port: int) -> list[str]:
            return next(answers)

        monkeypatch.setattr(media_module, "_resolve", resolve)
        monkeypatch.setattr(media_module, "_is_public", lambda address: address == "127.0.0.1")
        try:
            ssl_context = ssl.create_default_context()
            authority.configure_trust(ssl_context)
            async with httpx.AsyncClient(verify=ssl_context) as http:
                data, reason, _ = await _fetch(http, f"https://mms.twiliocdn.com:{port}/AC/x")
            untrusted = ssl.create_default_context()  # the test CA is not trusted here
            answers = iter([["127.0.0.1"]])
            async with httpx.AsyncClient(verify=untrusted) as http:
                _, refused, retryable = await _fetch(http, f"https://mms.twiliocdn.com:{port}/x")
        finally:
            server.should_exit = True
            await task
            sock.close()
    assert (data, reason) == (PDF, None)
    assert refused is not None and "falha de rede" in refused and retryable is True
