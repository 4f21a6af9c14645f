"""CPF and CNPJ validation, parsing and search in free text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from api.identifiers.documents import (
    Document,
    cnpj_check_digits,
    cpf_check_digits,
    find_documents,
    is_valid_cnpj,
    is_valid_cpf,
    only_document_chars,
    parse_document,
)
from api.identifiers.errors import InvalidIdentifier

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("145.382.206-20", "14538220620"),
        (" 12.abc.345/01de-35 ", "12ABC34501DE35"),
        ("11 222 333 0001 81", "11222333000181"),
    ],
)
def test_only_document_chars(text: str, expected: str) -> None:
    assert only_document_chars(text) == expected


# Check digits worked out by hand with the mod-11 rule (weights 10..2, then 11..2).
@pytest.mark.parametrize(
    ("first9", "digits"),
    [("145382206", "20"), ("123456789", "09"), ("111444777", "35")],
)
def test_cpf_check_digits(first9: str, digits: str) -> None:
    assert cpf_check_digits(first9) == digits


@pytest.mark.parametrize(
    "text",
    ["145.382.206-20", "14538220620", "123.456.789-09", "111.444.777-35", "145382206-20"],
)
def test_valid_cpf(text: str) -> None:
    assert is_valid_cpf(text)


@pytest.mark.parametrize(
    "text",
    [
        "145.382.206-21",  # second check digit wrong
        "145.382.206-10",  # first check digit wrong
        "111.111.111-11",  # one repeated digit passes mod 11 but is not a CPF
        "000.000.000-00",
        "1453822062",  # 10 digits
        "145382206200",  # 12 digits
        "14538220A20",
        "",
    ],
)
def test_invalid_cpf(text: str) -> None:
    assert not is_valid_cpf(text)


# 12.ABC.345/01DE-35 is the example of the Receita Federal's alphanumeric CNPJ documentation;
# the others are numeric CNPJs whose digits were also checked by hand.
@pytest.mark.parametrize(
    "text",
    [
        "11.222.333/0001-81",
        "11222333000181",
        "14.572.457/0001-85",
        "12.ABC.345/01DE-35",
        "12ABC34501DE35",
        "12.abc.345/01de-35",
    ],
)
def test_valid_cnpj(text: str) -> None:
    assert is_valid_cnpj(text)


@pytest.mark.parametrize(
    "text",
    [
        "11.222.333/0001-82",
        "12.ABC.345/01DE-36",
        "12.ABC.345/01DE-3A",  # check digits stay numeric
        "11.111.111/1111-11",
        "00.000.000/0000-00",
        "11.222.333/0001-8",
        "12.AB#.345/01DE-35",  # only ASCII letters and digits count; '#' is dropped -> 13 chars
    ],
)
def test_invalid_cnpj(text: str) -> None:
    assert not is_valid_cnpj(text)


@pytest.mark.parametrize(
    ("first12", "digits"),
    [("112223330001", "81"), ("12ABC34501DE", "35"), ("12abc34501de", "35")],
)
def test_cnpj_check_digits(first12: str, digits: str) -> None:
    assert cnpj_check_digits(first12) == digits


@pytest.mark.parametrize(
    ("function", "body"),
    [
        (cpf_check_digits, "14538220"),
        (cpf_check_digits, "14538220A"),
        (cnpj_check_digits, "11222333000"),
        (cnpj_check_digits, "12ABC34501D-"),
    ],
)
def test_check_digits_reject_malformed_bodies(function: Callable[[str], str], body: str) -> None:
    with pytest.raises(InvalidIdentifier):
        function(body)


@pytest.mark.parametrize(
    ("text", "kind", "value", "formatted"),
    [
        ("145.382.206-20", "cpf", "14538220620", "145.382.206-20"),
        ("14538220620", "cpf", "14538220620", "145.382.206-20"),
        ("11222333000181", "cnpj", "11222333000181", "11.222.333/0001-81"),
        ("12.abc.345/01de-35", "cnpj", "12ABC34501DE35", "12.ABC.345/01DE-35"),
    ],
)
def test_parse_document(text: str, kind: str, value: str, formatted: str) -> None:
    document = parse_document(text)
    assert (document.kind, document.value, document.formatted) == (kind, value, formatted)
    assert str(document) == formatted


@pytest.mark.parametrize(
    ("text", "kind", "reason"),
    [
        ("145.382.206-21", "cpf", "wrong check digits"),
        ("11.222.333/0001-82", "cnpj", "wrong check digits"),
        ("1453822062", "document", "got 10"),
        ("", "document", "got 0"),
        ("111.111.111-11", "cpf", "repeat"),
        ("12.ABC.345/01DE-3A", "cnpj", "must be digits"),
    ],
)
def test_parse_document_explains_the_problem(text: str, kind: str, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_document(text)
    assert caught.value.kind == kind
    assert reason in str(caught.value)


def test_document_refuses_an_invalid_value() -> None:
    with pytest.raises(InvalidIdentifier):
        Document("cpf", "145.382.206-20")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("meu cpf é 145.382.206-20", [("cpf", "14538220620", "145.382.206-20")]),
        ("CPF:14538220620.", [("cpf", "14538220620", "14538220620")]),
        ("cnpj (11.222.333/0001-81)", [("cnpj", "11222333000181", "11.222.333/0001-81")]),
        ("CNPJ 12.ABC.345/01DE-35 ok", [("cnpj", "12ABC34501DE35", "12.ABC.345/01DE-35")]),
        ("CNPJ 12ABC34501DE35", [("cnpj", "12ABC34501DE35", "12ABC34501DE35")]),
        (
            "cpf 145.382.206-20 e cnpj 14.572.457/0001-85",
            [
                ("cpf", "14538220620", "145.382.206-20"),
                ("cnpj", "14572457000185", "14.572.457/0001-85"),
            ],
        ),
    ],
)
def test_find_documents(text: str, expected: list[tuple[str, str, str]]) -> None:
    found = [(d.kind, d.value, text[start:end]) for d, start, end in find_documents(text)]
    assert found == expected


@pytest.mark.parametrize(
    "text",
    [
        "cpf 145.382.206-21",  # bad check digit
        "cnpj 11.222.333/0001-82",
        "código de barras 11222333000181145382206201234567890123456789012",  # inside a long run
        "0014538220620",  # 13 digits
        "linha 23790.12345 60000.000001 23456.789012 1 11222333000181",  # boleto line
        "zap +55 11 98765-4321 ou +5514538220620",
        "data 12/03/2026, valor R$ 1.500,00, 5x",
        "https://loja.com.br/produto/11222333000181-x",
        "pedido 12abc34501de35",  # lowercase bare run: an id, not a CNPJ
    ],
)
def test_find_documents_ignores_other_numbers(text: str) -> None:
    assert find_documents(text) == []
