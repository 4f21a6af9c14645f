"""Static Pix BR Code ("copia e cola"): an EMV TLV payload ending in a CRC16-CCITT-FALSE."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal

from api.identifiers.errors import InvalidIdentifier

PIX_GUI = "br.gov.bcb.pix"
_MAX_FIELD = 99
_MAX_NAME = 25
_MAX_CITY = 15
_MAX_TXID = 25
_MAX_KEY = 77
_DEFAULT_TXID = "***"
_TXID_RE = re.compile(r"[A-Za-z0-9]{1,25}")
_AMOUNT_RE = re.compile(r"\d{1,10}(?:\.\d{1,2})?")
_CRC_RE = re.compile(r"[0-9A-Fa-f]{4}")


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection, no final xor)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def _tlv(tag: str, value: str) -> str:
    if len(value) > _MAX_FIELD:
        raise InvalidIdentifier("pix", f"field {tag} is longer than {_MAX_FIELD} characters")
    return f"{tag}{len(value):02d}{value}"


def _ascii(text: str) -> str:
    """Fold to printable ASCII ("São Paulo" -> "Sao Paulo"), as BR Code readers expect."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if " " <= c <= "~")
    return " ".join(kept.split())


def _crc_hex(payload_without_crc: str) -> str:
    return f"{crc16_ccitt_false(payload_without_crc.encode('ascii')):04X}"


def build_static_pix(
    *,
    key: str,
    amount: Decimal | None,
    merchant_name: str,
    merchant_city: str,
    txid: str,
    description: str | None = None,
) -> str:
    """Build a static Pix "copia e cola" payload; a too-long description is shortened to fit."""
    key = key.strip()
    if not key or len(key) > _MAX_KEY or not key.isascii() or any(c.isspace() for c in key):
        raise InvalidIdentifier("pix", f"the key must be 1-{_MAX_KEY} ASCII characters, no spaces")
    name = _ascii(merchant_name)[:_MAX_NAME].strip()
    city = _ascii(merchant_city)[:_MAX_CITY].strip()
    if not name or not city:
        raise InvalidIdentifier("pix", "merchant name and city are required")
    txid = txid.strip() or _DEFAULT_TXID
    if txid != _DEFAULT_TXID and not _TXID_RE.fullmatch(txid):
        raise InvalidIdentifier("pix", f"txid must be 1-{_MAX_TXID} letters or digits")

    account = _tlv("00", PIX_GUI) + _tlv("01", key)
    if description:
        room = _MAX_FIELD - len(account) - 4
        text = _ascii(description)[: max(room, 0)].strip()
        if text:
            account += _tlv("02", text)

    payload = _tlv("00", "01") + _tlv("26", account) + _tlv("52", "0000") + _tlv("53", "986")
    if amount is not None:
        if not amount.is_finite() or amount <= 0:
            raise InvalidIdentifier("pix", "the amount must be positive")
        if amount != amount.quantize(Decimal("0.01")):
            raise InvalidIdentifier("pix", "the amount has more than 2 decimal places")
        formatted = f"{amount:.2f}"
        if len(formatted) > 13:
            raise InvalidIdentifier("pix", "the amount is too large")
        payload += _tlv("54", formatted)
    payload += _tlv("58", "BR") + _tlv("59", name) + _tlv("60", city)
    payload += _tlv("62", _tlv("05", txid)) + "6304"
    return payload + _crc_hex(payload)


def parse_tlv(payload: str) -> dict[str, str]:
    """Split an EMV TLV string (a payload or a template's value) into {tag: value}."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(payload):
        header = payload[position : position + 4]
        if len(header) < 4 or not header.isdigit() or not header.isascii():
            raise InvalidIdentifier("pix", f"malformed field header at position {position}")
        tag, length = header[:2], int(header[2:])
        value = payload[position + 4 : position + 4 + length]
        if len(value) != length:
            raise InvalidIdentifier("pix", f"field {tag} is shorter than its declared length")
        if tag in fields:
            raise InvalidIdentifier("pix", f"field {tag} appears twice")
        fields[tag] = value
        position += 4 + length
    return fields


def _has_pix_account(fields: dict[str, str]) -> bool:
    for tag in (f"{n:02d}" for n in range(26, 52)):
        if tag not in fields:
            continue
        account = parse_tlv(fields[tag])
        if account.get("00", "").lower() == PIX_GUI and ("01" in account or "25" in account):
            return True
    return False


def is_valid_pix(payload: str) -> bool:
    """Check a Pix payload's structure (mandatory fields, lengths) and its CRC."""
    text = payload.strip()
    if not text.isascii() or len(text) < 8 or text[-8:-4] != "6304":
        return False
    if not _CRC_RE.fullmatch(text[-4:]) or text[-4:].upper() != _crc_hex(text[:-4]):
        return False
    try:
        fields = parse_tlv(text)
        tags = list(fields)
        if tags[0] != "00" or tags[-1] != "63" or fields["00"] != "01":
            return False
        if not _has_pix_account(fields):
            return False
        txid = parse_tlv(fields.get("62", "")).get("05", "")
    except (InvalidIdentifier, KeyError, IndexError):
        return False
    amount = fields.get("54")
    return (
        fields.get("52", "").isdigit()
        and len(fields.get("52", "")) == 4
        and fields.get("53") == "986"
        and fields.get("58") == "BR"
        and 1 <= len(fields.get("59", "")) <= _MAX_NAME
        and 1 <= len(fields.get("60", "")) <= _MAX_CITY
        and (txid == _DEFAULT_TXID or _TXID_RE.fullmatch(txid) is not None)
        and (amount is None or _AMOUNT_RE.fullmatch(amount) is not None)
    )
