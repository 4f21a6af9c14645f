"""Content-Disposition for any file name: Latin-1-safe header, exact name in filename*, ASCII fallback."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from api.web.security import content_disposition

pytestmark = pytest.mark.unit

NAMES = ["Acordo – Aurora.pdf", "relatório✓€.pdf", 'a"b\r\nSet-Cookie: x=1.pdf']


def _filename_star(header: str) -> str:
    (encoded,) = [p.strip() for p in header.split(";") if p.strip().startswith("filename*=")]
    return unquote(encoded.removeprefix("filename*=UTF-8''"))


@pytest.mark.parametrize("name", NAMES)
def test_content_disposition_is_latin1_safe_and_keeps_the_exact_name(name: str) -> None:
    header = content_disposition("attachment", name)
    header.encode("latin-1")  # what Starlette does with every header value
    assert "\r" not in header and "\n" not in header
    assert _filename_star(header) == name.replace("\r", " ").replace("\n", " ").strip()


def test_content_disposition_folds_accents_in_the_ascii_fallback() -> None:
    assert content_disposition("inline", "relatório✓€.pdf").startswith(
        'inline; filename="relatorio.pdf"; '
    )
    assert 'filename="anexo"' in content_disposition("attachment", None)
