"""Phone normalization to E.164, ninth-digit variants and search in free text."""

from __future__ import annotations

import pytest

from api.identifiers.errors import InvalidIdentifier
from api.identifiers.phones import find_phones, normalize_phone, phone_variants

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("whatsapp:+5511987654321", "+5511987654321"),
        ("WhatsApp: +55 11 98765-4321", "+5511987654321"),
        ("(11) 98765-4321", "+5511987654321"),
        ("11987654321", "+5511987654321"),
        ("011 98765-4321", "+5511987654321"),
        ("+55 11 8765-4321", "+551187654321"),  # pre-2016 mobile as WhatsApp shows it
        ("+55 (21) 3265-4321", "+552132654321"),  # landline
        ("tel:+1 650 253 0000", "+16502530000"),
        ("5511987654321", "+5511987654321"),
    ],
)
def test_normalize_phone(raw: str, expected: str) -> None:
    assert normalize_phone(raw) == expected


def test_normalize_phone_with_another_default_region() -> None:
    assert normalize_phone("(650) 253-0000", default_region="US") == "+16502530000"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "junk",
        "123",
        "meu numero é 11987654321",
        "+55 00 98765-4321",  # no area code 00
        "+55 11 2765-4321 ramal",
        "+55 11 1765-4321",  # neither a landline nor an old mobile
        "+1 555",
    ],
)
def test_normalize_phone_rejects_junk(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalize_phone(raw)
    assert caught.value.kind == "phone"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+5511987654321", ["+5511987654321", "+551187654321"]),
        ("+551187654321", ["+551187654321", "+5511987654321"]),
        ("+558196543210", ["+558196543210", "+5581996543210"]),
        ("+5581996543210", ["+5581996543210", "+558196543210"]),
        ("+556276543210", ["+556276543210", "+5562976543210"]),
        ("+551132654321", ["+551132654321"]),  # landline
        ("+5511912345678", ["+5511912345678"]),  # 9-1234-5678 never had an 8-digit form
        ("+16502530000", ["+16502530000"]),
        ("whatsapp:+5511987654321", ["+5511987654321", "+551187654321"]),
    ],
)
def test_phone_variants(number: str, expected: list[str]) -> None:
    assert phone_variants(number) == expected


@pytest.mark.parametrize(
    "number", ["+5511987654321", "+551187654321", "+5581996543210", "+558196543210"]
)
def test_phone_variants_are_symmetric(number: str) -> None:
    variants = phone_variants(number)
    assert phone_variants(variants[1]) == [variants[1], number]


def test_phone_variants_rejects_junk() -> None:
    with pytest.raises(InvalidIdentifier):
        phone_variants("not a phone")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("me liga no (11) 98765-4321", [("+5511987654321", "(11) 98765-4321")]),
        ("zap +55 11 98765-4321.", [("+5511987654321", "+55 11 98765-4321")]),
        ("antigo: 11 8765-4321", [("+551187654321", "11 8765-4321")]),
        (
            "fixo (21) 3265-4321 ou cel 21987654321",
            [("+552132654321", "(21) 3265-4321"), ("+5521987654321", "21987654321")],
        ),
    ],
)
def test_find_phones(text: str, expected: list[tuple[str, str]]) -> None:
    assert [(e164, text[start:end]) for e164, start, end in find_phones(text)] == expected


@pytest.mark.parametrize(
    "text",
    [
        "cpf 145.382.206-20",
        "cpf 119.876.543-21",  # shaped like a CPF, even though the digits form a mobile
        "cnpj 11.222.333/0001-81",
        "linha 23790.12345 60000.000001 23456.789012 1 96010000150000",
        "valor R$ 1.500,00 em 5x, vence 12/03/2026",
        "caso INF-2026-000123",
    ],
)
def test_find_phones_ignores_other_numbers(text: str) -> None:
    assert find_phones(text) == []
