"""Stored Twilio webhook forms parsed into text, media and details (no server, no database)."""

from __future__ import annotations

import pytest

from api.channels.whatsapp_twilio.adapter import parse_message_form
from tests.fixtures.twilio.harness import load_form

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("fixture", "text", "media_types"),
    [
        ("message_text", "oi, recebi a notificação sobre os tênis. como resolvo isso?", []),
        ("message_image_caption", "segue o comprovante do pix", ["image/jpeg"]),
        ("message_voice_note", "[áudio]", ["audio/ogg"]),
        (
            "message_location",
            "[localização: -23.5613,-46.6565 MASP Av. Paulista, 1578 - Bela Vista, "
            "São Paulo - SP, 01310-200]",
            [],
        ),
        ("message_button_reply", "Quero negociar", []),
    ],
)
def test_stored_forms_are_read_into_text_and_media(
    fixture: str, text: str, media_types: list[str]
) -> None:
    parsed = parse_message_form({k: [v] for k, v in load_form(fixture).items()})
    assert parsed.text == text
    assert [m.content_type for m in parsed.media] == media_types
    assert parsed.phone == "+5511987654321"
    assert parsed.meta["profile_name"] == "Carlos Souza"


def test_button_and_location_details_are_kept_in_meta() -> None:
    button = parse_message_form({k: [v] for k, v in load_form("message_button_reply").items()})
    location = parse_message_form({k: [v] for k, v in load_form("message_location").items()})
    assert button.meta["button_payload"] == "negociar"
    assert location.meta["location"]["label"] == "MASP"
    assert location.meta["message_type"] == "location"
