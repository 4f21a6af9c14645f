"""Files an analyst attaches to a reply: size and type limits checked on the bytes (not the
name or the browser's claim), stored content-addressed, handed to the outbox as attachments."""

from __future__ import annotations

from api.config import get_settings
from api.conversations.outbound import OutboundAttachment
from api.errors import ValidationFailed
from api.storage import sniff_content_type, store_blob

# What every provider we send through accepts and an infringer can open.
UPLOAD_TYPES: dict[str, str] = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "application/pdf": "PDF",
}


class UploadRefused(ValidationFailed):
    code = "upload_refused"


def max_upload_bytes() -> int:
    return get_settings().max_attachment_bytes


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".", ",")


def check_upload(filename: str, data: bytes) -> OutboundAttachment:
    """Store an analyst's file after checking it; UploadRefused says why it was refused."""
    name = (filename or "arquivo").replace("/", "_").replace("\\", "_").strip()[:200] or "arquivo"
    limit = max_upload_bytes()
    if not data:
        raise UploadRefused(f"O arquivo {name} está vazio.")
    if len(data) > limit:
        raise UploadRefused(
            f"O arquivo {name} tem {_mb(len(data))}; o limite é {_mb(limit)}.",
            size=len(data),
            limit=limit,
        )
    content_type = sniff_content_type(data, None)
    if content_type not in UPLOAD_TYPES:
        raise UploadRefused(
            f"O tipo do arquivo {name} ({content_type}) não é aceito. "
            f"Aceitos: {', '.join(UPLOAD_TYPES.values())}.",
            content_type=content_type,
        )
    blob = store_blob(data, content_type)
    return OutboundAttachment(
        storage_path=blob.path,
        filename=name,
        content_type=blob.content_type,
        sha256=blob.sha256,
        size=blob.size,
    )
