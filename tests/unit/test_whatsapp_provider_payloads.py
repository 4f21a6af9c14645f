"""Each provider's stored, real-shaped payloads read by its adapter (no network, no database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from api.channels.numbers.media import ProviderMediaRefused, check_url
from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import MalformedPayload, ParsedWebhook
from api.channels.numbers.service import make_route, normalize_number, parse_route
from api.channels.whatsapp_cloud.adapter import message_body
from api.channels.whatsapp_cloud.adapter import parse_webhook as parse_cloud
from api.channels.whatsapp_meta.adapter import signature_of
from api.channels.whatsapp_twilio.composer import WhatsAppComposer
from api.channels.whatsapp_ultramsg.adapter import parse_webhook as parse_ultramsg
from api.channels.whatsapp_zapi.adapter import parse_webhook as parse_zapi
from api.config import get_settings
from api.conversations.models import Channel, DeliveryStatus
from api.conversations.outbound import TemplateUse
from api.devtools.whatsapp_provider_sim import SimConfig, build_message_payload, encode
from api.errors import ValidationFailed
from api.outbox.senders import Envelope
from api.templates.service import get_template, load_catalog, render
from tests.helpers.whatsapp_providers import FIXTURES, PROVIDERS, SAMPLE_IDS

pytestmark = pytest.mark.unit

GRAPH = "https://graph.facebook.com/v21.0"


def parse(provider: str, body: bytes) -> ParsedWebhook:
    if provider in ("meta", "360dialog"):
        return parse_cloud(body, provider=Provider(provider), media_base=GRAPH)
    return parse_zapi(body) if provider == "zapi" else parse_ultramsg(body)


def fixture(provider: str, name: str) -> bytes:
    return (FIXTURES / provider / f"{name}.json").read_bytes()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_text_message(provider: str) -> None:
    parsed = parse(provider, fixture(provider, "message_text"))
    assert parsed.statuses == []
    [message] = parsed.messages
    assert message.external_id == SAMPLE_IDS[provider]
    assert message.sender == "+5511987650000"
    assert message.to == "+5511940000001"
    assert message.text == "Oi, recebi a notificação. Quero resolver."
    assert message.meta["profile_name"] == "Maria Vendas"
    assert message.media == () and message.answerable


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_image_with_a_caption_is_a_file_to_fetch(provider: str) -> None:
    [message] = parse(provider, fixture(provider, "message_image")).messages
    assert message.text == "comprovante"
    [media] = message.media
    if provider in ("meta", "360dialog"):
        assert media.source_url == f"{GRAPH}/1234567890123456"  # by media id
        assert media.content_type == "image/jpeg"
    else:
        assert media.source_url.startswith("https://")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("status_delivered", DeliveryStatus.DELIVERED),
        ("status_read", DeliveryStatus.READ),
        ("status_failed", DeliveryStatus.FAILED),
    ],
)
def test_statuses(provider: str, name: str, status: DeliveryStatus) -> None:
    parsed = parse(provider, fixture(provider, name))
    assert parsed.messages == []
    [report] = parsed.statuses
    assert report.status is status
    if status is DeliveryStatus.FAILED:
        assert report.error
    if provider == "ultramsg":
        assert report.message_id == 1  # our id, echoed as referenceId "trt-1"


@pytest.mark.parametrize("provider", ["meta", "360dialog"])
def test_131047_reads_as_outside_the_24_hour_window(provider: str) -> None:
    [report] = parse(provider, fixture(provider, "status_failed")).statuses
    assert report.error_code == "131047"
    assert report.error is not None and "fora da janela de 24 horas" in report.error


def test_cloud_api_interactive_location_and_reaction() -> None:
    cfg = SimConfig(provider="meta")
    payload = build_message_payload(cfg, sender="+5511987650000", body="x")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    variants = {
        "interactive": {
            "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "pix", "title": "Pix"}},
        },
        "location": {
            "type": "location",
            "location": {"latitude": -23.55, "longitude": -46.63, "name": "Loja"},
        },
        "reaction": {
            "type": "reaction",
            "reaction": {"message_id": "wamid.ours", "emoji": "👍"},
        },
    }
    read = {}
    for kind, shape in variants.items():
        message.pop("text", None)
        for key in variants:
            message.pop(key, None)
        message.update(shape)
        [parsed] = parse_cloud(encode(payload), provider=Provider.META, media_base=GRAPH).messages
        read[kind] = parsed
    assert read["interactive"].text == "Pix" and read["interactive"].meta["reply_id"] == "pix"
    assert read["location"].text == "[localização: -23.55,-46.63 Loja]"
    assert read["reaction"].text == "[reação: 👍]" and not read["reaction"].answerable


@pytest.mark.parametrize("provider", PROVIDERS)
def test_what_is_not_a_webhook_is_malformed(provider: str) -> None:
    with pytest.raises(MalformedPayload):
        parse(provider, b'{"hello": "world"}' if provider != "ultramsg" else b"not json")


def test_our_own_echoes_are_ignored() -> None:
    zapi = json.loads(fixture("zapi", "message_text"))
    zapi["fromMe"] = True
    ultra = json.loads(fixture("ultramsg", "message_text"))
    ultra["data"]["fromMe"] = True
    assert parse_zapi(encode(zapi)).messages == []
    assert parse_ultramsg(encode(ultra)).messages == []


def test_ultramsg_form_posts_carry_the_json_in_data() -> None:
    body = urlencode({"data": fixture("ultramsg", "message_text").decode()}).encode()
    [message] = parse_ultramsg(body).messages
    assert message.external_id == SAMPLE_IDS["ultramsg"]


def test_meta_signature_is_hmac_sha256_of_the_raw_body() -> None:
    # The RFC 4231-style vector everyone quotes (key "key", the quick brown fox).
    body = b"The quick brown fox jumps over the lazy dog"
    assert signature_of(body, "key") == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


def test_template_message_body_names_the_template_and_orders_its_variables() -> None:
    envelope = Envelope(
        message_id=1,
        conversation_id=1,
        channel=Channel.WHATSAPP,
        to="+5511987650000",
        text="Olá…",
        content_sid="retomada_conversa",
        content_variables={"2": "INF-1", "1": "Maria", "10": "x", "3": "Acme"},
        meta={"template_language": "pt_BR"},
    )
    body = message_body(envelope)
    assert body["to"] == "5511987650000" and body["type"] == "template"
    assert body["template"]["name"] == "retomada_conversa"
    params = body["template"]["components"][0]["parameters"]
    assert [p["text"] for p in params] == ["Maria", "INF-1", "Acme", "x"]


def test_routes_and_numbers() -> None:
    assert normalize_number("whatsapp:+1 (555) 000-1234") == "+15550001234"
    assert parse_route(make_route(Provider.ZAPI, "+5511940000001")) == (
        Provider.ZAPI,
        "+5511940000001",
    )
    assert parse_route("whatsapp:+14155238886") == (Provider.TWILIO, "+14155238886")
    assert parse_route(None) == (Provider.TWILIO, None)


def _retomada(monkeypatch: pytest.MonkeyPatch, provider: str) -> TemplateUse:
    monkeypatch.setenv("WHATSAPP_PROVIDER", provider)
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", "{}")
    get_settings.cache_clear()
    load_catalog.cache_clear()
    template = get_template("retomada_conversa")
    variables = {"infringer_name": "Maria", "case_ref": "INF-1", "brand": "Acme"}
    return TemplateUse(
        name=template.name, variables=variables, rendered_text=render(template, variables)
    )


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    yield
    get_settings.cache_clear()
    load_catalog.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_twilio_refuses_a_template_without_a_content_sid(monkeypatch: pytest.MonkeyPatch) -> None:
    use = _retomada(monkeypatch, "twilio")
    with pytest.raises(ValidationFailed, match="Content SID"):
        WhatsAppComposer().check_template(use)


@pytest.mark.usefixtures("fresh_settings")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_other_providers_send_a_template_by_name_or_as_text(
    monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    WhatsAppComposer().check_template(_retomada(monkeypatch, provider))


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://lookaside.fbsbx.com/x", "só https"),
        ("https://evil.example/x", "host não permitido"),
        ("https://localhost/x", "endereço interno"),
        ("https://user:pw@lookaside.fbsbx.com/x", "URL inválida"),
        ("file:///etc/passwd", "URL inválida"),
    ],
)
async def test_a_provider_media_url_off_its_hosts_is_refused(url: str, reason: str) -> None:
    with pytest.raises(ProviderMediaRefused, match=reason):
        await check_url(
            url,
            trusted=["https://graph.facebook.com/v21.0"],
            hosts=("lookaside.fbsbx.com", "localhost"),
        )


async def test_the_configured_api_origin_is_trusted_as_is() -> None:
    checked = await check_url(
        "http://127.0.0.1:8101/whatsapp_business/attachments/?mid=1",
        trusted=["http://127.0.0.1:8101/v21.0"],
        hosts=(),
    )
    assert checked.host == "127.0.0.1"
