"""Static Pix BR Code: CRC, TLV structure, validation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.identifiers.errors import InvalidIdentifier
from api.payments.pix import build_static_pix, crc16_ccitt_false, is_valid_pix, parse_tlv

pytestmark = pytest.mark.unit

# The static example of the Banco Central's "Manual de Padrões para Iniciação do Pix".
BCB_EXAMPLE = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-426655440000"
    "5204000053039865802BR5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)


def _payload(**overrides: object) -> str:
    arguments: dict[str, object] = {
        "key": "financeiro@tratativa.com.br",
        "amount": Decimal("1500.00"),
        "merchant_name": "Tratativa Proteção de Marcas",
        "merchant_city": "São Paulo",
        "txid": "INF2026000123",
        "description": "Acordo INF-2026-000123",
    }
    arguments.update(overrides)
    return build_static_pix(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "expected"),
    [(b"123456789", 0x29B1), (b"", 0xFFFF), (b"A", 0xB915)],
)
def test_crc16_ccitt_false(data: bytes, expected: int) -> None:
    assert crc16_ccitt_false(data) == expected


def test_bcb_example_is_valid() -> None:
    assert is_valid_pix(BCB_EXAMPLE)


def test_payload_round_trips_through_parse_tlv() -> None:
    payload = _payload()
    fields = parse_tlv(payload)
    assert list(fields) == ["00", "26", "52", "53", "54", "58", "59", "60", "62", "63"]
    assert fields["00"] == "01"
    assert parse_tlv(fields["26"]) == {
        "00": "br.gov.bcb.pix",
        "01": "financeiro@tratativa.com.br",
        "02": "Acordo INF-2026-000123",
    }
    assert [fields[tag] for tag in ("52", "53", "54", "58")] == ["0000", "986", "1500.00", "BR"]
    assert fields["59"] == "Tratativa Protecao de Mar"
    assert fields["60"] == "Sao Paulo"
    assert parse_tlv(fields["62"]) == {"05": "INF2026000123"}
    assert fields["63"] == f"{crc16_ccitt_false(payload[:-4].encode()):04X}"
    assert payload.endswith("6304" + fields["63"])
    assert is_valid_pix(payload)


def test_payload_without_amount_or_description() -> None:
    payload = _payload(amount=None, description=None, txid="")
    fields = parse_tlv(payload)
    assert "54" not in fields
    assert parse_tlv(fields["26"]) == {"00": "br.gov.bcb.pix", "01": "financeiro@tratativa.com.br"}
    assert parse_tlv(fields["62"]) == {"05": "***"}
    assert is_valid_pix(payload)


def test_long_texts_are_folded_and_shortened() -> None:
    payload = _payload(
        merchant_name="Associação Brasileira de Proteção às Marcas Registradas",
        merchant_city="São José dos Campos do Norte",
        description="x" * 120,
    )
    fields = parse_tlv(payload)
    assert fields["59"] == "Associacao Brasileira de"
    assert fields["60"] == "Sao Jose dos Ca"
    assert len(fields["26"]) == 99
    assert is_valid_pix(payload)


@pytest.mark.parametrize("position", [0, 5, 20, 40, 60, 80, 100, -1, -5])
def test_changing_one_character_breaks_the_payload(position: int) -> None:
    payload = _payload()
    index = position % len(payload)
    replacement = "1" if payload[index] == "0" else "0"
    tampered = payload[:index] + replacement + payload[index + 1 :]
    assert len(tampered) == len(payload)
    assert tampered != payload
    assert not is_valid_pix(tampered)


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "6304ABCD",
        BCB_EXAMPLE[:-4],
        BCB_EXAMPLE[:-4] + "1D3E",
        BCB_EXAMPLE + " extra",
        BCB_EXAMPLE.replace("5303986", "5303840"),
    ],
)
def test_invalid_payloads(payload: str) -> None:
    assert not is_valid_pix(payload)


def test_payload_with_wrong_currency_but_right_crc_is_rejected() -> None:
    body = BCB_EXAMPLE[:-4].replace("5303986", "5303840")
    assert not is_valid_pix(body + f"{crc16_ccitt_false(body.encode()):04X}")


@pytest.mark.parametrize(
    "overrides",
    [
        {"key": ""},
        {"key": "chave com espaço"},
        {"key": "x" * 78},
        {"amount": Decimal("0")},
        {"amount": Decimal("-1")},
        {"amount": Decimal("10.005")},
        {"amount": Decimal("10000000000")},
        {"merchant_name": "  "},
        {"merchant_city": "東京"},
        {"txid": "INF-2026-000123"},
        {"txid": "A" * 26},
    ],
)
def test_build_rejects_bad_input(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidIdentifier):
        _payload(**overrides)


@pytest.mark.parametrize("payload", ["0", "0003ab", "0002010", "0099abc", "0002010002ab", "AB02xy"])
def test_parse_tlv_rejects_malformed(payload: str) -> None:
    with pytest.raises(InvalidIdentifier):
        parse_tlv(payload)
