"""Bank boleto (FEBRABAN layout): 44-digit barcode and 47-digit linha digitável."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from api.identifiers.errors import InvalidIdentifier

CURRENCY_BRL = "9"
FACTOR_BASE_DATE = date(1997, 10, 7)
# The 4-digit due factor reached 9999 on 2025-02-21; from 2025-02-22 it restarts at 1000
# (FEBRABAN), so each cycle covers 9000 days.
FACTOR_RESET_DATE = date(2025, 2, 22)
_FACTOR_MIN, _FACTOR_MAX = 1000, 9999
_CYCLE_DAYS = _FACTOR_MAX - _FACTOR_MIN + 1
_MAX_CENTS = 9_999_999_999
_NON_DIGITS = re.compile(r"\D")


def _mod10(digits: str) -> int:
    """Check digit of a linha digitável field: weights 2,1,2,... from the right, digit sums."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        product = int(char) * (2 if index % 2 == 0 else 1)
        total += product // 10 + product % 10
    return (10 - total % 10) % 10


def _mod11(digits: str) -> int:
    """General check digit of a barcode: weights 2..9 from the right; 0, 10 and 11 become 1."""
    total = sum(int(char) * (2 + index % 8) for index, char in enumerate(reversed(digits)))
    result = 11 - total % 11
    return 1 if result in (0, 10, 11) else result


def due_factor(due_date: date) -> int:
    """The 4-digit due factor of a date under the current (post-2025) FEBRABAN rule."""
    days = (due_date - FACTOR_BASE_DATE).days
    if days < _FACTOR_MIN:
        raise InvalidIdentifier("boleto", "due dates before 2000-07-03 have no due factor")
    if days <= _FACTOR_MAX:
        return days
    return _FACTOR_MIN + (days - _FACTOR_MAX - 1) % _CYCLE_DAYS


def due_date_from_factor(factor: int, *, reference: date) -> date:
    """The date with this due factor that is closest to a reference date (e.g. today)."""
    if not _FACTOR_MIN <= factor <= _FACTOR_MAX:
        raise InvalidIdentifier("boleto", f"a due factor is {_FACTOR_MIN}-{_FACTOR_MAX}")
    first = FACTOR_BASE_DATE + timedelta(days=factor)
    cycles = round((reference - first).days / _CYCLE_DAYS)
    return first + timedelta(days=max(cycles, 0) * _CYCLE_DAYS)


def _barcode_problem(barcode: str) -> str | None:
    if len(barcode) != 44 or not barcode.isdigit() or not barcode.isascii():
        return "a barcode has 44 digits"
    if barcode[3] != CURRENCY_BRL:
        return "only boletos in BRL (currency code 9) are supported"
    if _mod11(barcode[:4] + barcode[5:]) != int(barcode[4]):
        return "wrong general check digit"
    return None


def is_valid_barcode(barcode: str) -> bool:
    """Tell whether 44 digits are a bank boleto barcode with a correct general check digit."""
    return _barcode_problem(barcode.strip()) is None


def _line_from_barcode(barcode: str) -> str:
    field1 = barcode[:4] + barcode[19:24]
    field2 = barcode[24:34]
    field3 = barcode[34:44]
    return (
        f"{field1}{_mod10(field1)}{field2}{_mod10(field2)}{field3}{_mod10(field3)}"
        f"{barcode[4]}{barcode[5:19]}"
    )


def _line_problem(line: str) -> str | None:
    if len(line) != 47 or not line.isdigit() or not line.isascii():
        return "a linha digitável has 47 digits"
    for start, end in ((0, 9), (10, 20), (21, 31)):
        if _mod10(line[start:end]) != int(line[end]):
            return "wrong field check digit"
    return _barcode_problem(_barcode_of_line(line))


def _barcode_of_line(line: str) -> str:
    return line[:4] + line[32] + line[33:47] + line[4:9] + line[10:20] + line[21:31]


def is_valid_digitable_line(line: str) -> bool:
    """Tell whether a linha digitável (with or without dots and spaces) has correct digits."""
    return _line_problem(_NON_DIGITS.sub("", line)) is None


def barcode_from_line(line: str) -> str:
    """Rebuild the 44-digit barcode from a valid linha digitável."""
    digits = _NON_DIGITS.sub("", line)
    problem = _line_problem(digits)
    if problem is not None:
        raise InvalidIdentifier("boleto", problem)
    return _barcode_of_line(digits)


def format_digitable_line(line: str) -> str:
    """Group 47 digits the printed way: "23790.12345 60000.000001 23456.789012 1 9601..."."""
    d = _NON_DIGITS.sub("", line)
    if len(d) != 47:
        raise InvalidIdentifier("boleto", "a linha digitável has 47 digits")
    return f"{d[:5]}.{d[5:10]} {d[10:15]}.{d[15:21]} {d[21:26]}.{d[26:32]} {d[32]} {d[33:]}"


@dataclass(frozen=True)
class Boleto:
    """A bank boleto's barcode and linha digitável, with the data they encode."""

    bank_code: str
    amount: Decimal
    due_date: date
    free_field: str
    barcode: str
    digitable_line: str

    def __post_init__(self) -> None:
        problem = _barcode_problem(self.barcode)
        if problem is None and self.digitable_line != _line_from_barcode(self.barcode):
            problem = "the linha digitável does not match the barcode"
        encoded = (
            f"{self.bank_code}{CURRENCY_BRL}{due_factor(self.due_date):04d}"
            f"{int(self.amount * 100):010d}{self.free_field}"
        )
        if problem is None and encoded != self.barcode[:4] + self.barcode[5:]:
            problem = "the barcode does not encode this bank, due date, amount and free field"
        if problem is not None:
            raise InvalidIdentifier("boleto", problem)

    @property
    def formatted_line(self) -> str:
        """The linha digitável as printed, in five groups."""
        return format_digitable_line(self.digitable_line)


def build_boleto(*, bank_code: str, amount: Decimal, due_date: date, free_field: str) -> Boleto:
    """Build a BRL boleto's barcode and linha digitável from its bank, amount, date and free field."""
    if not re.fullmatch(r"[0-9]{3}", bank_code):
        raise InvalidIdentifier("boleto", "the bank code has 3 digits")
    if not re.fullmatch(r"[0-9]{25}", free_field):
        raise InvalidIdentifier("boleto", "the free field has 25 digits")
    if not amount.is_finite() or amount < 0:
        raise InvalidIdentifier("boleto", "the amount must be zero or positive")
    cents = amount * 100
    if cents != cents.to_integral_value() or cents > _MAX_CENTS:
        raise InvalidIdentifier("boleto", "the amount needs whole cents, up to 99,999,999.99")
    body = f"{bank_code}{CURRENCY_BRL}{due_factor(due_date):04d}{int(cents):010d}{free_field}"
    barcode = f"{body[:4]}{_mod11(body)}{body[4:]}"
    return Boleto(
        bank_code=bank_code,
        amount=amount,
        due_date=due_date,
        free_field=free_field,
        barcode=barcode,
        digitable_line=_line_from_barcode(barcode),
    )
