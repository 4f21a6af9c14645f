"""Case references printed on notices and e-mail subjects: INF-<year>-<6-digit sequence>."""

from __future__ import annotations

import re

from .errors import InvalidIdentifier

PREFIX = "INF"
# Lenient on purpose: people retype the reference as "inf 2026 000123", "INF2026000123" or
# "INF/2026/123". The canonical form is what format_case_ref returns.
# Zeros may be dropped ("INF-2026-123") only when a separator makes the sequence unambiguous.
CASE_REF_RE = re.compile(
    r"(?<![A-Za-z0-9])INF\s*[-_./#:]?\s*(?P<year>\d{4})"
    r"(?:\s*[-_./]\s*(?P<seq>\d{1,6})|\s*(?P<seq6>\d{6}))(?!\d)",
    re.IGNORECASE,
)
CANONICAL_CASE_REF_RE = re.compile(r"INF-\d{4}-\d{6}")
_MIN_YEAR, _MAX_YEAR = 2000, 2999
_MAX_SEQ = 999_999


def _sequence(match: re.Match[str]) -> int:
    return int(match.group("seq") or match.group("seq6"))


def format_case_ref(year: int, seq: int) -> str:
    """Build the canonical reference, e.g. (2026, 123) -> "INF-2026-000123"."""
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        raise InvalidIdentifier("case_ref", f"year must be {_MIN_YEAR}-{_MAX_YEAR}")
    if not 1 <= seq <= _MAX_SEQ:
        raise InvalidIdentifier("case_ref", f"sequence must be 1-{_MAX_SEQ}")
    return f"{PREFIX}-{year:04d}-{seq:06d}"


def parse_case_ref(text: str) -> str:
    """Normalize a reference ("inf-2026-000123", "INF 2026 000123", "INF2026000123")."""
    match = CASE_REF_RE.fullmatch(text.strip())
    if match is None:
        raise InvalidIdentifier("case_ref", "expected a reference like INF-2026-000123")
    return format_case_ref(int(match.group("year")), _sequence(match))


def find_case_refs(text: str) -> list[tuple[str, int, int]]:
    """Find case references in free text, canonical, with their offsets."""
    found: list[tuple[str, int, int]] = []
    for match in CASE_REF_RE.finditer(text):
        try:
            reference = format_case_ref(int(match.group("year")), _sequence(match))
        except InvalidIdentifier:
            continue
        found.append((reference, match.start(), match.end()))
    return found
