"""Files the panel serves: attachments and the images an e-mail shows inline, to logged-in
analysts only, never rendered as a page of the panel."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import Response

from api.conversations.models import Attachment
from api.conversations.views import get_attachment, get_inline_image
from api.errors import NotFound
from api.panel.auth import PANEL_PREFIX, DbSession, PanelAnalyst
from api.storage import read_blob
from api.web.params import PathId
from api.web.security import FILE_CSP, content_disposition

# Files an analyst's browser may show inline; anything else is downloaded, never rendered on
# our origin (an HTML or SVG "attachment" would otherwise run as a page of the panel).
INLINE_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "audio/ogg",
        "audio/mpeg",
        "audio/mp4",
        "audio/aac",
        "audio/amr",
        "video/mp4",
        "video/3gpp",
    }
)

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


async def file_response(attachment: Attachment) -> Response:
    if attachment.storage_path is None:
        reason = attachment.refused_reason or "arquivo não armazenado"
        raise NotFound(f"Este anexo não está disponível: {reason}.")
    try:
        data = await asyncio.to_thread(read_blob, attachment.storage_path)
    except (OSError, ValueError) as exc:
        raise NotFound("O arquivo deste anexo não foi encontrado no armazenamento.") from exc
    content_type = attachment.content_type.split(";")[0].strip().lower()
    inline = content_type in INLINE_TYPES
    return Response(
        data,
        media_type=content_type or "application/octet-stream",
        headers={
            "Content-Disposition": content_disposition(
                "inline" if inline else "attachment", attachment.filename
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": FILE_CSP,
            "Cache-Control": "private, max-age=3600",
        },
    )


@router.get("/anexos/{attachment_id}")
async def attachment_file(
    session: DbSession, _analyst: PanelAnalyst, attachment_id: PathId
) -> Response:
    attachment = await get_attachment(session, attachment_id=attachment_id)
    if attachment is None:
        raise NotFound(f"Anexo {attachment_id} não encontrado.")
    return await file_response(attachment)


@router.get("/mensagens/{message_id}/inline/{cid:path}")
async def inline_image(
    session: DbSession, _analyst: PanelAnalyst, message_id: PathId, cid: str
) -> Response:
    """An image an e-mail shows inline (`<img src="cid:…">`), by its Content-ID."""
    attachment = await get_inline_image(session, message_id=message_id, content_id=cid)
    if attachment is None or attachment.content_type not in INLINE_TYPES:
        raise NotFound("Imagem não encontrada.")
    return await file_response(attachment)
