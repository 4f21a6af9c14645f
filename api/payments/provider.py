"""The payment-provider interface and the local provider (valid static Pix and boleto payloads)."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from api.brands.models import Brand
from api.errors import ValidationFailed
from api.payments.boleto import build_boleto
from api.payments.pix import build_static_pix


@dataclass(frozen=True)
class Charge:
    """What a provider returns for one installment."""

    pix_payload: str
    boleto_barcode: str
    boleto_line: str


class PaymentProvider(Protocol):
    name: str

    def issue_charge(
        self, *, brand: Brand, case_reference: str, amount: Decimal, due_date: dt.date, txid: str
    ) -> Charge: ...


class LocalPaymentProvider:
    """Builds real, checkable payloads from the brand's official Pix key; no bank is called.

    Good for development, demos and tests; a production deployment plugs in its bank or PSP
    behind the same interface (dynamic Pix, registered boletos, webhooks for reconciliation).
    """

    name = "local"
    bank_code = "341"

    def issue_charge(
        self, *, brand: Brand, case_reference: str, amount: Decimal, due_date: dt.date, txid: str
    ) -> Charge:
        if not brand.pix_key:
            raise ValidationFailed(
                f"A marca {brand.name} não tem chave Pix oficial configurada; "
                "não é possível gerar pagamento."
            )
        pix = build_static_pix(
            key=brand.pix_key,
            amount=amount,
            merchant_name=brand.payee_name or brand.name,
            merchant_city=brand.payee_city or "Sao Paulo",
            txid=txid,
            description=case_reference,
        )
        # The 25-digit free field carries our reference so reconciliation can find the case.
        digest = int(hashlib.sha256(txid.encode()).hexdigest(), 16)
        free_field = f"{digest % 10**25:025d}"
        boleto = build_boleto(
            bank_code=self.bank_code, amount=amount, due_date=due_date, free_field=free_field
        )
        return Charge(
            pix_payload=pix, boleto_barcode=boleto.barcode, boleto_line=boleto.formatted_line
        )


def get_payment_provider() -> PaymentProvider:
    return LocalPaymentProvider()
