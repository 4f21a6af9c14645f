"""A WhatsApp message without text reaches the bot as a bracketed media label (issue 17)."""

import pytest

from api.channels.whatsapp_twilio.adapter import _MEDIA_LABELS, media_label
from api.identifiers.media import MEDIA_LABELS, media_only_labels

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "labels"),
    [
        ("[áudio]", ["áudio"]),
        ("[figurinha]", ["figurinha"]),
        (" [imagem, imagem] ", ["imagem", "imagem"]),
        ("[vídeo, documento]", ["vídeo", "documento"]),
        ("[áudio] oi", None),
        ("segue o [documento]", None),
        ("[xyz]", None),
        ("", None),
    ],
)
def test_media_only_labels(text: str, labels: list[str] | None) -> None:
    assert media_only_labels(text) == labels


def test_every_label_the_adapter_writes_is_recognised() -> None:
    written = {label for _, label in _MEDIA_LABELS} | {media_label("application/zip")}
    assert written <= set(MEDIA_LABELS)
