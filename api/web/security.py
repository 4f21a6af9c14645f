"""Response headers shared by every page we render and every file we serve."""

from __future__ import annotations

import re
import unicodedata
from typing import TypeVar
from urllib.parse import quote

from starlette.responses import Response

# Our pages load only their own files: no inline script, no remote anything. E-mail HTML is
# sanitized before the panel renders it; this is the second wall should a sanitizer miss.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
# A served file is never a page of our origin, even if a browser is talked into rendering it.
FILE_CSP = "default-src 'none'; sandbox"

R = TypeVar("R", bound=Response)

_NOT_TOKEN = re.compile(r"[^A-Za-z0-9._-]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def apply_security_headers(response: R) -> R:
    """CSP, no framing, no sniffing, no referrer to other sites, never cached (pages show
    names, CPF/CNPJ and amounts)."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


def content_disposition(kind: str, filename: str | None) -> str:
    """`inline`/`attachment` with any filename, per RFC 6266: an ASCII `filename` fallback
    (accents folded, anything else as `_`) and the exact name in `filename*` (RFC 5987).

    HTTP headers are Latin-1 on the wire: a raw "Acordo – Aurora.pdf" cannot be sent at all.
    """
    name = _CONTROL.sub(" ", filename or "").strip() or "anexo"
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = _NOT_TOKEN.sub("_", folded)[:100].strip("_") or "anexo"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[:200], safe='')}"
