"""The one sanitizer for e-mail HTML, used when a message is stored and again before a page
shows it (whatever stored it, stored HTML is untrusted).

No scripts, styles, event handlers, comments or remote images (tracking pixels); links open
without an opener or a referrer. `cid:` images are kept as references when stored; a page
passes `inline_src` to turn each one into a URL it serves (or drop it)."""

from __future__ import annotations

from collections.abc import Callable

import nh3

URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
LINK_REL = "noopener noreferrer nofollow"


def sanitize_email_html(html: str, *, inline_src: Callable[[str], str | None] | None = None) -> str:
    """HTML safe to show: `inline_src(content_id)` maps a `cid:` image to the URL that serves
    it (None drops the image); without it `cid:` references are kept as they are."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "img" and attribute == "src":
            if not value.lower().startswith("cid:"):
                return None
            if inline_src is None:
                return value
            return inline_src(value[4:].strip().strip("<>"))
        return value

    cleaned: str = nh3.clean(
        html,
        url_schemes=set(URL_SCHEMES),
        attribute_filter=keep,
        strip_comments=True,
        link_rel=LINK_REL,
    )
    return cleaned
