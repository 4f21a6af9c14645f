"""CPF and CNPJ (alphanumeric CNPJ included): validation, search, and shared text helpers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from .errors import InvalidIdentifier

DocumentKind = Literal["cpf", "cnpj"]

_CPF_WEIGHTS_1 = tuple(range(10, 1, -1))
_CPF_WEIGHTS_2 = tuple(range(11, 1, -1))
_CNPJ_WEIGHTS_1 = (5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)
_CNPJ_WEIGHTS_2 = (6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2)

_NON_DOCUMENT_CHARS = re.compile(r"[^0-9A-Za-z]")
_CPF_BODY = re.compile(r"[0-9]{9}")
_CNPJ_BODY = re.compile(r"[0-9A-Z]{12}")

# A boleto's linha digitável ("23790.12345 60000.000001 23456.789012 1 96010000150000"): its
# groups are digit runs of CPF/CNPJ/phone size, so searches mask the whole line first.
BOLETO_LINE_RE = re.compile(
    r"(?<![0-9])[0-9]{5}[.\s]?[0-9]{5}\s*[0-9]{5}[.\s]?[0-9]{6}\s*[0-9]{5}[.\s]?[0-9]{6}"
    r"\s*[0-9]\s*[0-9]{14}(?![0-9])"
)

# Candidates are maximal runs of letters and digits joined by single separators, so a document
# is only found when it is the whole run, never inside a longer number (barcode, phone, URL id).
_TOKEN_RE = re.compile(r"[0-9A-Za-z]+(?:[./-][0-9A-Za-z]+)*")
_CPF_TEXT_RE = re.compile(r"[0-9]{3}\.?[0-9]{3}\.?[0-9]{3}-?[0-9]{2}")
_CNPJ_TEXT_RE = re.compile(r"[0-9A-Z]{2}\.?[0-9A-Z]{3}\.?[0-9A-Z]{3}/?[0-9A-Z]{4}-?[0-9]{2}")
_CNPJ_PUNCTUATED_RE = re.compile(
    r"[0-9A-Z]{2}\.[0-9A-Z]{3}\.[0-9A-Z]{3}/[0-9A-Z]{4}-[0-9]{2}", re.IGNORECASE
)


def only_document_chars(text: str) -> str:
    """Drop punctuation and spaces from a CPF/CNPJ and uppercase its letters."""
    return _NON_DOCUMENT_CHARS.sub("", text).upper()


def _mod11_digit(values: list[int], weights: tuple[int, ...]) -> int:
    remainder = sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return 0 if remainder < 2 else 11 - remainder


def cpf_check_digits(first9: str) -> str:
    """Return the two check digits of a CPF from its first nine digits."""
    if not _CPF_BODY.fullmatch(first9):
        raise InvalidIdentifier("cpf", "the CPF body must be exactly 9 digits")
    values = [int(c) for c in first9]
    first = _mod11_digit(values, _CPF_WEIGHTS_1)
    second = _mod11_digit([*values, first], _CPF_WEIGHTS_2)
    return f"{first}{second}"


def cnpj_check_digits(first12: str) -> str:
    """Return the two check digits of a CNPJ from its first twelve (alphanumeric) characters."""
    body = first12.upper()
    if not _CNPJ_BODY.fullmatch(body):
        raise InvalidIdentifier("cnpj", "the CNPJ body must be exactly 12 characters 0-9 or A-Z")
    values = [ord(c) - 48 for c in body]
    first = _mod11_digit(values, _CNPJ_WEIGHTS_1)
    second = _mod11_digit([*values, first], _CNPJ_WEIGHTS_2)
    return f"{first}{second}"


def _cpf_problem(value: str) -> str | None:
    if len(value) != 11:
        return f"a CPF has 11 digits, got {len(value)} characters"
    if not value.isdigit() or not value.isascii():
        return "a CPF has digits only"
    if len(set(value)) == 1:
        return "a CPF cannot repeat one digit"
    if cpf_check_digits(value[:9]) != value[9:]:
        return "wrong check digits"
    return None


def _cnpj_problem(value: str) -> str | None:
    if len(value) != 14:
        return f"a CNPJ has 14 characters, got {len(value)}"
    if not _CNPJ_BODY.fullmatch(value[:12]):
        return "the first 12 characters of a CNPJ must be 0-9 or A-Z"
    if not value[12:].isdigit() or not value[12:].isascii():
        return "the last 2 characters of a CNPJ must be digits"
    if len(set(value)) == 1:
        return "a CNPJ cannot repeat one character"
    if cnpj_check_digits(value[:12]) != value[12:]:
        return "wrong check digits"
    return None


def is_valid_cpf(text: str) -> bool:
    """Tell whether a text (punctuated or not) is a valid CPF."""
    return _cpf_problem(only_document_chars(text)) is None


def is_valid_cnpj(text: str) -> bool:
    """Tell whether a text (punctuated or not, numeric or alphanumeric) is a valid CNPJ."""
    return _cnpj_problem(only_document_chars(text)) is None


@dataclass(frozen=True)
class Document:
    """A valid CPF or CNPJ, stored without punctuation (letters uppercased)."""

    kind: DocumentKind
    value: str

    def __post_init__(self) -> None:
        problem = _cpf_problem(self.value) if self.kind == "cpf" else _cnpj_problem(self.value)
        if problem is not None:
            raise InvalidIdentifier(self.kind, problem)

    @property
    def formatted(self) -> str:
        """The usual punctuated form: ###.###.###-## or ##.###.###/####-##."""
        v = self.value
        if self.kind == "cpf":
            return f"{v[:3]}.{v[3:6]}.{v[6:9]}-{v[9:]}"
        return f"{v[:2]}.{v[2:5]}.{v[5:8]}/{v[8:12]}-{v[12:]}"

    def __str__(self) -> str:
        return self.formatted


def parse_document(text: str) -> Document:
    """Parse one CPF (11 digits) or CNPJ (14 characters); raise InvalidIdentifier with the reason."""
    value = only_document_chars(text)
    if len(value) == 11:
        return Document("cpf", value)
    if len(value) == 14:
        return Document("cnpj", value)
    raise InvalidIdentifier(
        "document",
        f"expected 11 characters (CPF) or 14 (CNPJ), got {len(value)}",
    )


def fold_text(text: str) -> str:
    """Lowercase and drop accents character by character, so offsets stay those of the text."""
    chars: list[str] = []
    for char in text:
        lowered = char.lower()
        if len(lowered) != 1:
            lowered = char
        base = unicodedata.normalize("NFKD", lowered)[:1]
        chars.append(base if base.isascii() and base else lowered)
    return "".join(chars)


def mask_spans(text: str, pattern: re.Pattern[str]) -> str:
    """Replace every match of a pattern by spaces, keeping the text's length and offsets."""
    return pattern.sub(lambda m: " " * (m.end() - m.start()), text)


def _document_in_token(token: str) -> Document | None:
    if _CPF_TEXT_RE.fullmatch(token):
        value = only_document_chars(token)
        return Document("cpf", value) if _cpf_problem(value) is None else None
    # Lowercase letters are accepted only in the fully punctuated form: a bare lowercase
    # 14-character run is far more likely an order id or a hash than a CNPJ.
    if _CNPJ_TEXT_RE.fullmatch(token) or _CNPJ_PUNCTUATED_RE.fullmatch(token):
        value = only_document_chars(token)
        return Document("cnpj", value) if _cnpj_problem(value) is None else None
    return None


def find_documents(text: str) -> list[tuple[Document, int, int]]:
    """Find valid CPFs and CNPJs in free text, with their (start, end) offsets in the text."""
    searchable = mask_spans(text, BOLETO_LINE_RE)
    found: list[tuple[Document, int, int]] = []
    for match in _TOKEN_RE.finditer(searchable):
        start = match.start()
        if start > 0 and searchable[start - 1] == "+":
            continue  # "+5511987654321": a phone number in E.164, never a document
        document = _document_in_token(match.group())
        if document is not None:
            found.append((document, start, match.end()))
    return found
