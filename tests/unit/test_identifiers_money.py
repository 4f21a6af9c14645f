"""Amounts in BRL, Portuguese number words and installments."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.identifiers.errors import InvalidIdentifier
from api.identifiers.money import (
    find_amounts,
    find_installments,
    format_brl,
    is_offer,
    parse_amount,
    parse_installments,
    words_to_number,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1500", "1500.00"),
        ("1500.00", "1500.00"),
        ("1.500,00", "1500.00"),
        ("R$ 1.500,00", "1500.00"),
        ("R$1500", "1500.00"),
        ("r$ 1500", "1500.00"),
        ("1500 reais", "1500.00"),
        ("1500reais", "1500.00"),
        ("1,5k", "1500.00"),
        ("2k", "2000.00"),
        ("2 k", "2000.00"),
        ("1.5 mil", "1500.00"),
        ("1,5 mil", "1500.00"),
        ("mil e quinhentos", "1500.00"),
        ("Mil e Quinhentos Reais", "1500.00"),
        ("dois mil", "2000.00"),
        ("2 mil e quinhentos", "2500.00"),
        ("oitocentos reais", "800.00"),
        ("800 conto", "800.00"),
        ("800 contos", "800.00"),
        ("R$ 99,90", "99.90"),
        ("1.500", "1500.00"),
        ("1,500.00", "1500.00"),
        ("1.500.000,50", "1500000.50"),
        ("15.000", "15000.00"),
        ("0,50", "0.50"),
        ("R$ 1.500,00.", "1500.00"),
        ("cento e vinte e cinco mil", "125000.00"),
        ("um milhão", "1000000.00"),
        ("1,2 milhões", "1200000.00"),
        ("duzentos e cinquenta reais", "250.00"),
        ("99 reais e 90 centavos", "99.90"),
        ("cinquenta centavos", "0.50"),
        ("BRL 300", "300.00"),
        ("  R$   2.000  ", "2000.00"),
    ],
)
def test_parse_amount(text: str, expected: str) -> None:
    assert parse_amount(text) == Decimal(expected)


def test_parse_amount_has_two_places() -> None:
    assert parse_amount("2k").as_tuple().exponent == -2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "-100",
        "R$ -100,00",
        "-R$ 100",
        "menos 100",
        "1.50.0",
        "1500.000",
        "1,5555",
        "dois tres",
        "mil mil",
        "vinte cento",
        "dez e cinco",
        "5x",
        "100 e 50",
        "um k",
        "99 reais e 150 centavos",
    ],
)
def test_parse_amount_rejects(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_amount(text)
    assert caught.value.kind == "amount"


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("1500", "R$ 1.500,00"),
        ("99.9", "R$ 99,90"),
        ("0", "R$ 0,00"),
        ("1234567.891", "R$ 1.234.567,89"),
        ("0.005", "R$ 0,01"),
        ("-3.5", "-R$ 3,50"),
    ],
)
def test_format_brl(amount: str, expected: str) -> None:
    assert format_brl(Decimal(amount)) == expected


def test_format_brl_round_trips() -> None:
    assert parse_amount(format_brl(Decimal("12345.67"))) == Decimal("12345.67")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("um", 1),
        ("uma", 1),
        ("duas", 2),
        ("três", 3),
        ("tres", 3),
        ("dez", 10),
        ("onze", 11),
        ("dezesseis", 16),
        ("dezenove", 19),
        ("vinte e um", 21),
        ("noventa e nove", 99),
        ("cem", 100),
        ("cento e um", 101),
        ("duzentos e cinquenta", 250),
        ("novecentos e noventa e nove", 999),
        ("mil", 1000),
        ("mil e quinhentos", 1500),
        ("dois mil e quinhentos", 2500),
        ("dois mil quinhentos e cinquenta", 2550),
        ("um milhão e duzentos mil", 1_200_000),
        ("dois milhoes", 2_000_000),
        ("2 mil", 2000),
        ("zero", 0),
    ],
)
def test_words_to_number(text: str, expected: int) -> None:
    assert words_to_number(text) == expected


@pytest.mark.parametrize(
    "text", ["", "abc", "um dois", "vinte trinta", "dez e um", "e cinco", "cinco e", "1,5"]
)
def test_words_to_number_rejects(text: str) -> None:
    assert words_to_number(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Proponho R$ 800,00.", [("800.00", "R$ 800,00")]),
        ("posso pagar 1500 reais", [("1500.00", "1500 reais")]),
        ("faço por 1,5k", [("1500.00", "1,5k")]),
        ("no máximo 2k", [("2000.00", "2k")]),
        ("aceito 1.5 mil", [("1500.00", "1.5 mil")]),
        ("pago mil e quinhentos", [("1500.00", "mil e quinhentos")]),
        ("uns dois mil", [("2000.00", "dois mil")]),
        ("tenho oitocentos reais", [("800.00", "oitocentos reais")]),
        ("800 conto e olhe lá", [("800.00", "800 conto")]),
        ("valor 99,90", [("99.90", "99,90")]),
        ("5x de R$ 300", [("300.00", "R$ 300")]),
        ("um R$ 100", [("100.00", "R$ 100")]),
        (
            "R$ 1.500,00 (mil e quinhentos reais)",
            [("1500.00", "R$ 1.500,00"), ("1500.00", "mil e quinhentos reais")],
        ),
        (
            "2 mil e quinhentos reais e cinquenta centavos",
            [("2500.50", "2 mil e quinhentos reais e cinquenta centavos")],
        ),
        ("R$1500 ou R$ 1.200", [("1500.00", "R$1500"), ("1200.00", "R$ 1.200")]),
    ],
)
def test_find_amounts(text: str, expected: list[tuple[str, str]]) -> None:
    found = [(str(amount), text[start:end]) for amount, start, end in find_amounts(text)]
    assert found == expected


@pytest.mark.parametrize(
    "text",
    [
        "meu cpf é 145.382.206-20",
        "cnpj 11.222.333/0001-81",
        "me liga (11) 98765-4321",
        "venceu em 12/03/2026 às 14:30",
        "pode ser em 5x?",
        "caso INF-2026-000123",
        "vendi 3 unidades",
        "vendi mil unidades",
        "tenho 2k seguidores",
        "desconto de 10%",
        "paguei 2 parcelas",
        "2kg",
        "14h30",
        "linha 23790.12345 60000.000001 23456.789012 1 96010000150000",
    ],
)
def test_find_amounts_ignores_other_numbers(text: str) -> None:
    assert find_amounts(text) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5x", 5),
        ("5 x", 5),
        ("10X", 10),
        ("em 10 vezes", 10),
        ("em dez vezes", 10),
        ("3 parcelas", 3),
        ("doze parcelas", 12),
        ("vinte e quatro parcelas", 24),
        ("posso pagar em 6x?", 6),
        ("posso pagar 5 vezes?", 5),
        ("5 vezes sem juros", 5),
        ("dá pra parcelar em 4?", 4),
        ("divido em três", 3),
        ("uma parcela", 1),
        ("5", 5),
        (" dez ", 10),
    ],
)
def test_parse_installments(text: str, expected: int) -> None:
    assert parse_installments(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "0", "0x", "mil", "1,5", "liguei 3 vezes"])
def test_parse_installments_rejects(text: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_installments(text)
    assert caught.value.kind == "installments"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Proponho 5x de R$ 300,00", [(5, "5x")]),
        (
            "pode ser em 10 vezes ou em doze parcelas?",
            [(10, "em 10 vezes"), (12, "em doze parcelas")],
        ),
        ("parcelar em 6 vezes", [(6, "em 6 vezes")]),
        ("já te liguei 3 vezes", []),
        ("mil vezes obrigado", []),
        ("resolução 1920x1080", []),
        ("R$ 1.500,00", []),
        ("cpf 145.382.206-20", []),
        # "uma" before a singular noun is an article, not one installment
        ("Em caso de atraso de uma parcela, o que acontece?", []),
        ("paguei uma parcela ontem", []),
        ("pago em uma parcela só", [(1, "em uma parcela")]),
        ("posso pagar em 1x", [(1, "em 1x")]),
        ("e se eu atrasar duas parcelas?", [(2, "duas parcelas")]),
    ],
)
def test_find_installments(text: str, expected: list[tuple[int, str]]) -> None:
    found = [(count, text[start:end]) for count, start, end in find_installments(text)]
    assert found == expected


@pytest.mark.parametrize(
    ("text", "amount", "offered"),
    [
        ("consigo pagar 300", "300", True),
        ("R$ 500,00 à vista", "R$ 500,00", True),
        ("Proponho R$ 800,00.", "R$ 800,00", True),
        ("paguei R$ 50 de frete", "R$ 50", False),
        ("paguei 50 reais no produto", "50 reais", False),
        ("custou R$ 200 e vendi só um", "R$ 200", False),
        ("vendi por 30 reais cada", "30 reais", False),
        ("tem R$ 10 de taxa no boleto", "R$ 10", False),
        ("paguei R$ 50 de frete, consigo pagar R$ 300", "R$ 300", True),
        ("já paguei 200 mas posso dar mais R$ 100", "R$ 100", True),
    ],
)
def test_is_offer(text: str, amount: str, offered: bool) -> None:
    start = text.index(amount)
    assert is_offer(text, start, start + len(amount)) is offered
