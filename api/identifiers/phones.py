"""Phone numbers: E.164 normalization, the Brazilian ninth-digit variants, search in free text."""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import Leniency, NumberParseException, PhoneNumber, PhoneNumberFormat

from .documents import BOLETO_LINE_RE, find_documents, mask_spans
from .errors import InvalidIdentifier

_BRAZIL = 55
_CHANNEL_PREFIX_RE = re.compile(r"^\s*(?:whatsapp|tel|sms)\s*:\s*", re.IGNORECASE)
_PHONE_CHARS_RE = re.compile(r"[+\d\s().\-/]+")
_CPF_SHAPE_RE = re.compile(r"\d{3}\.\d{3}\.\d{3}-?\d{2}")
# Before 2016 mobile subscriber numbers had 8 digits starting with 6-9; the ninth digit "9"
# was then prepended. WhatsApp still shows old accounts without it.
_OLD_MOBILE_FIRST_DIGITS = frozenset("6789")


def _e164(number: PhoneNumber) -> str:
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _ninth_digit_variant(national: str) -> str | None:
    """The same Brazilian mobile with the ninth digit added or removed, if it is a mobile."""
    area, subscriber = national[:2], national[2:]
    if len(subscriber) == 8 and subscriber[0] in _OLD_MOBILE_FIRST_DIGITS:
        return f"{area}9{subscriber}"
    if len(subscriber) == 9 and subscriber[0] == "9" and subscriber[1] in _OLD_MOBILE_FIRST_DIGITS:
        return f"{area}{subscriber[1:]}"
    return None


def _is_acceptable(number: PhoneNumber) -> bool:
    if phonenumbers.is_valid_number(number):
        return True
    if number.country_code != _BRAZIL:
        return False
    # "+55 11 8765-4321" is no longer a valid number plan entry, but it is how WhatsApp
    # shows a pre-2016 mobile: accept it when the form with the ninth digit is valid.
    variant = _ninth_digit_variant(phonenumbers.national_significant_number(number))
    if variant is None:
        return False
    return phonenumbers.is_valid_number(phonenumbers.parse(f"+55{variant}"))


def normalize_phone(raw: str, default_region: str = "BR") -> str:
    """Normalize a phone number ("whatsapp:+55...", "(11) 98765-4321", ...) to E.164."""
    text = _CHANNEL_PREFIX_RE.sub("", raw).strip()
    if not text or not _PHONE_CHARS_RE.fullmatch(text) or not any(c.isdigit() for c in text):
        raise InvalidIdentifier("phone", "not a phone number")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        raise InvalidIdentifier("phone", "not a phone number") from exc
    if not _is_acceptable(number):
        raise InvalidIdentifier("phone", "not a valid number for its country")
    return _e164(number)


def phone_variants(e164: str) -> list[str]:
    """The number itself, then its form with or without the ninth digit if it is a BR mobile."""
    normalized = normalize_phone(e164)
    number = phonenumbers.parse(normalized)
    if number.country_code != _BRAZIL:
        return [normalized]
    variant = _ninth_digit_variant(phonenumbers.national_significant_number(number))
    if variant is None:
        return [normalized]
    return [normalized, f"+55{variant}"]


def find_phones(text: str) -> list[tuple[str, int, int]]:
    """Find phone numbers (Brazilian by default) in free text, as E.164 with their offsets."""
    searchable = mask_spans(text, BOLETO_LINE_RE)
    punctuated_documents = [
        (start, end)
        for _, start, end in find_documents(text)
        if any(not c.isalnum() for c in text[start:end])
    ]
    found: list[tuple[str, int, int]] = []
    for match in phonenumbers.PhoneNumberMatcher(searchable, "BR", leniency=Leniency.POSSIBLE):
        start, end = match.start, match.end
        if _CPF_SHAPE_RE.fullmatch(match.raw_string):
            continue
        if any(start < d_end and d_start < end for d_start, d_end in punctuated_documents):
            continue
        if not _is_acceptable(match.number):
            continue
        found.append((_e164(match.number), start, end))
    return found
