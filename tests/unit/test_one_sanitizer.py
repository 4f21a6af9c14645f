"""One HTML sanitizer (api/conversations/html.py) for what ingestion stores and what the panel
shows; before issue 11 there were two with different allow-lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.channels.email.parser import sanitize_html
from api.conversations.html import sanitize_email_html
from api.panel.views import clean_email_html

pytestmark = pytest.mark.unit

API = Path(__file__).resolve().parents[2] / "api"
HOSTILE = (
    '<p onclick="x()">Oi</p><script>alert(1)</script><style>p{}</style>'
    '<a href="javascript:alert(1)">js</a><a href="https://loja.example/a">site</a>'
    '<img src="https://tracker.example/p.gif"><img src="cid:logo@x"><!-- c -->'
    '<a href="mailto:juridico@loja.example">mail</a>'
)


def test_nh3_is_called_in_one_module_only() -> None:
    users = sorted(
        str(path.relative_to(API))
        for path in API.rglob("*.py")
        if "import nh3" in path.read_text(encoding="utf-8")
    )
    assert users == ["conversations/html.py"]


def test_stored_and_shown_html_follow_the_same_allow_list() -> None:
    stored = sanitize_html(HOSTILE)
    assert stored == sanitize_email_html(HOSTILE)
    for gone in ("onclick", "<script", "<style", "javascript:", "tracker.example", "<!--"):
        assert gone not in stored
    assert '<a href="https://loja.example/a" rel="noopener noreferrer nofollow">site</a>' in stored
    assert 'href="mailto:juridico@loja.example"' in stored
    assert '<img src="cid:logo@x">' in stored  # kept for the panel to resolve

    shown = str(clean_email_html(stored, message_id=7, inline_cids=frozenset({"logo@x"})))
    # Displaying sanitized HTML again changes nothing but the cid: image's address.
    assert shown == stored.replace("cid:logo@x", "/painel/mensagens/7/inline/logo%40x")
    unknown = str(clean_email_html(stored, message_id=7, inline_cids=frozenset()))
    assert "cid:" not in unknown and "<img src" not in unknown  # an unknown image is dropped
