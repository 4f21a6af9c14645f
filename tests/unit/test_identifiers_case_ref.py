"""Case references: INF-<year>-<sequence>."""

from __future__ import annotations

import pytest

from api.identifiers.case_ref import (
    CANONICAL_CASE_REF_RE,
    find_case_refs,
    format_case_ref,
    parse_case_ref,
)
from api.identifiers.errors import InvalidIdentifier

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("year", "seq", "expected"),
    [
        (2026, 123, "INF-2026-000123"),
        (2026, 1, "INF-2026-000001"),
        (2031, 999999, "INF-2031-999999"),
    ],
)
def test_format_case_ref(year: int, seq: int, expected: str) -> None:
    reference = format_case_ref(year, seq)
    assert reference == expected
    assert CANONICAL_CASE_REF_RE.fullmatch(reference)


@pytest.mark.parametrize(("year", "seq"), [(26, 1), (2026, 0), (2026, 1_000_000), (12026, 1)])
def test_format_case_ref_rejects(year: int, seq: int) -> None:
    with pytest.raises(InvalidIdentifier):
        format_case_ref(year, seq)


@pytest.mark.parametrize(
    "text",
    [
        "INF-2026-000123",
        "inf-2026-000123",
        "INF 2026 000123",
        "INF2026000123",
        " Inf-2026-000123 ",
        "INF/2026/000123",
        "INF-2026-123",
        "INF - 2026 - 000123",
    ],
)
def test_parse_case_ref(text: str) -> None:
    assert parse_case_ref(text) == "INF-2026-000123"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "INF-2026",
        "INF 2026 123",  # a short sequence needs a separator to be unambiguous
        "INF-2026-0001234",
        "XINF-2026-000123",
        "ABC-2026-000123",
        "INF-26-000123",
        "INF-2026-000000",
        "caso INF-2026-000123",
    ],
)
def test_parse_case_ref_rejects(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_case_ref(text)
    assert caught.value.kind == "case_ref"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Re: [INF-2026-000123] Notificação extrajudicial",
            [("INF-2026-000123", "INF-2026-000123")],
        ),
        (
            "sobre o inf 2026 000124 e o INF2026000125.",
            [("INF-2026-000124", "inf 2026 000124"), ("INF-2026-000125", "INF2026000125")],
        ),
        ("ref.: INF-2027-42, obrigado", [("INF-2027-000042", "INF-2027-42")]),
        ("INFORMO que paguei 2026", []),
        ("CONFINF-2026-000123", []),
        ("INF-2026-0001234", []),
    ],
)
def test_find_case_refs(text: str, expected: list[tuple[str, str]]) -> None:
    found = [(reference, text[start:end]) for reference, start, end in find_case_refs(text)]
    assert found == expected
