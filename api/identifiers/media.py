"""The text a message without text stands for, as the WhatsApp adapter writes it.

api.channels.whatsapp_twilio.adapter turns a message with media and no text into a bracketed
label ("[áudio]", "[figurinha]", "[imagem, imagem]"). The bot cannot listen to audio or look
at pictures: its classifier sends such a text to the fallback, and the fallback answers
honestly instead of asking to rephrase. Pure Python: the bot (Rasa env) and the service both
read it.
"""

from __future__ import annotations

import re

MEDIA_LABELS: tuple[str, ...] = (
    "figurinha",
    "imagem",
    "áudio",
    "vídeo",
    "documento",
    "contato",
    "arquivo",
)
_LABEL = "|".join(MEDIA_LABELS)
_MEDIA_ONLY_RE = re.compile(rf"\[\s*(?:{_LABEL})(?:\s*,\s*(?:{_LABEL}))*\s*\]")


def media_only_labels(text: str) -> list[str] | None:
    """The media labels of a text that is only a media placeholder, else None."""
    stripped = text.strip()
    if not _MEDIA_ONLY_RE.fullmatch(stripped):
        return None
    return [label.strip() for label in stripped[1:-1].split(",")]
