"""Bank boleto: barcode, linha digitável, check digits and due factor."""

from __future__ import annotations

import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from api.identifiers.errors import InvalidIdentifier
from api.payments.boleto import (
    Boleto,
    barcode_from_line,
    build_boleto,
    due_date_from_factor,
    due_factor,
    format_digitable_line,
    is_valid_barcode,
    is_valid_digitable_line,
)

pytestmark = pytest.mark.unit

# A real Itaú boleto line published in the README of the "boleto-coding" PHP library.
PUBLISHED_LINE = "34191670060463564064460910580004739290000307014"
PUBLISHED_BARCODE = "34197392900003070141670004635640646091058000"
FREE_FIELD = "0123456000000000234567890"


def _boleto() -> Boleto:
    return build_boleto(
        bank_code="237",
        amount=Decimal("1500.00"),
        due_date=date(2026, 3, 15),
        free_field=FREE_FIELD,
    )


def test_published_line_is_valid() -> None:
    assert is_valid_digitable_line(PUBLISHED_LINE)
    assert barcode_from_line(PUBLISHED_LINE) == PUBLISHED_BARCODE
    assert is_valid_barcode(PUBLISHED_BARCODE)


def test_build_reproduces_the_published_boleto() -> None:
    boleto = build_boleto(
        bank_code="341",
        amount=Decimal("3070.14"),
        due_date=date(1997, 10, 7) + timedelta(days=3929),
        free_field="1670004635640646091058000",
    )
    assert boleto.barcode == PUBLISHED_BARCODE
    assert boleto.digitable_line == PUBLISHED_LINE
    assert boleto.formatted_line == "34191.67006 04635.640644 60910.580004 7 39290000307014"


def test_build_layout() -> None:
    boleto = _boleto()
    factor = (date(2026, 3, 15) - date(2025, 2, 22)).days + 1000
    assert len(boleto.barcode) == 44
    assert len(boleto.digitable_line) == 47
    assert boleto.barcode[:4] == "2379"
    assert boleto.barcode[5:9] == f"{factor:04d}"
    assert boleto.barcode[9:19] == "0000150000"
    assert boleto.barcode[19:] == FREE_FIELD
    assert re.fullmatch(r"\d{5}\.\d{5} \d{5}\.\d{6} \d{5}\.\d{6} \d \d{14}", boleto.formatted_line)
    assert boleto.formatted_line.endswith(f" {boleto.barcode[4]} {factor:04d}0000150000")


def test_line_and_barcode_round_trip() -> None:
    boleto = _boleto()
    assert is_valid_barcode(boleto.barcode)
    assert is_valid_digitable_line(boleto.digitable_line)
    assert is_valid_digitable_line(boleto.formatted_line)
    assert barcode_from_line(boleto.digitable_line) == boleto.barcode
    assert barcode_from_line(boleto.formatted_line) == boleto.barcode
    assert format_digitable_line(boleto.digitable_line) == boleto.formatted_line


# Every digit of the three fields and the general check digit is guarded by a check digit
# that catches any single change.
@pytest.mark.parametrize("position", range(33))
def test_one_changed_digit_in_the_line_is_rejected(position: int) -> None:
    line = _boleto().digitable_line
    changed = line[:position] + str((int(line[position]) + 1) % 10) + line[position + 1 :]
    assert not is_valid_digitable_line(changed)
    with pytest.raises(InvalidIdentifier):
        barcode_from_line(changed)


def test_a_changed_amount_is_rejected() -> None:
    line = PUBLISHED_LINE
    changed = line[:-1] + "5"  # R$ 3.070,15 instead of R$ 3.070,14
    assert not is_valid_digitable_line(changed)


@pytest.mark.parametrize("position", [0, 4, 10, 20, 43])
def test_one_changed_digit_in_the_barcode_is_rejected(position: int) -> None:
    barcode = PUBLISHED_BARCODE
    changed = barcode[:position] + str((int(barcode[position]) + 1) % 10) + barcode[position + 1 :]
    assert not is_valid_barcode(changed)


@pytest.mark.parametrize(
    "barcode",
    [
        "",
        "123",
        PUBLISHED_BARCODE[:-1],
        PUBLISHED_BARCODE + "0",
        PUBLISHED_BARCODE[:3] + "0" + PUBLISHED_BARCODE[4:],
    ],
)
def test_malformed_barcodes(barcode: str) -> None:
    assert not is_valid_barcode(barcode)


@pytest.mark.parametrize(
    ("due", "factor"),
    [
        (date(2000, 7, 3), 1000),
        (date(2025, 2, 21), 9999),
        (date(2025, 2, 22), 1000),
        (date(2025, 2, 23), 1001),
        (date(2026, 3, 15), 1386),
        (date(2049, 10, 13), 9999),
        (date(2049, 10, 14), 1000),
    ],
)
def test_due_factor(due: date, factor: int) -> None:
    assert due_factor(due) == factor


@pytest.mark.parametrize(
    ("factor", "reference", "expected"),
    [
        (1386, date(2026, 1, 1), date(2026, 3, 15)),
        (3929, date(2008, 1, 1), date(1997, 10, 7) + timedelta(days=3929)),
        (9999, date(2025, 1, 1), date(2025, 2, 21)),
        (1000, date(2025, 3, 1), date(2025, 2, 22)),
    ],
)
def test_due_date_from_factor(factor: int, reference: date, expected: date) -> None:
    assert due_date_from_factor(factor, reference=reference) == expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"bank_code": "23"},
        {"bank_code": "23A"},
        {"free_field": FREE_FIELD[:-1]},
        {"amount": Decimal("-1")},
        {"amount": Decimal("10.001")},
        {"amount": Decimal("100000000.00")},
        {"due_date": date(2000, 1, 1)},
    ],
)
def test_build_rejects_bad_input(overrides: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "bank_code": "237",
        "amount": Decimal("1500.00"),
        "due_date": date(2026, 3, 15),
        "free_field": FREE_FIELD,
    }
    arguments.update(overrides)
    with pytest.raises(InvalidIdentifier):
        build_boleto(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "overrides",
    [
        {"digitable_line": PUBLISHED_LINE},
        {"amount": Decimal("1500.01")},
        {"due_date": date(2026, 3, 16)},
        {"bank_code": "341"},
        {"free_field": "1" * 25},
    ],
)
def test_boleto_refuses_inconsistent_parts(overrides: dict[str, object]) -> None:
    boleto = _boleto()
    arguments: dict[str, object] = {
        "bank_code": boleto.bank_code,
        "amount": boleto.amount,
        "due_date": boleto.due_date,
        "free_field": boleto.free_field,
        "barcode": boleto.barcode,
        "digitable_line": boleto.digitable_line,
    }
    Boleto(**arguments)  # type: ignore[arg-type]
    arguments.update(overrides)
    with pytest.raises(InvalidIdentifier):
        Boleto(**arguments)  # type: ignore[arg-type]
