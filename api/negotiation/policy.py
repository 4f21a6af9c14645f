"""Decisions the bot may take alone; anything outside the brand's policy goes to a human."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from api.brands.models import Brand


class Verdict(enum.StrEnum):
    ACCEPTABLE = "acceptable"  # within policy: the bot may propose it
    HANDOFF = "handoff"  # outside policy: only a person decides
    NEEDS_INPUT = "needs_input"  # nothing concrete to evaluate yet


@dataclass(frozen=True)
class Offer:
    amount: Decimal
    installments: int

    @property
    def installment_amount(self) -> Decimal:
        return (self.amount / self.installments).quantize(Decimal("0.01"), rounding=ROUND_UP)


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    offer: Offer | None
    reason: str


def max_installments_for(brand: Brand, amount: Decimal) -> int:
    """The brand's cap, lowered so no installment falls below its minimum amount."""
    by_minimum = int(amount // brand.min_installment_amount) if brand.min_installment_amount else 0
    return max(1, min(brand.max_installments, by_minimum or 1))


def opening_offer(brand: Brand, claimed: Decimal | None) -> Offer:
    """The amount the bot presents first: the case's claim, bounded by the brand's base amount."""
    amount = min(claimed, brand.base_amount) if claimed else brand.base_amount
    amount = max(amount, brand.floor_amount)
    return Offer(amount=amount, installments=1)


def evaluate_counteroffer(
    brand: Brand, amount: Decimal | None, installments: int = 1
) -> Evaluation:
    if amount is None:
        return Evaluation(Verdict.NEEDS_INPUT, None, "contraproposta sem valor")
    if amount < brand.floor_amount:
        return Evaluation(Verdict.HANDOFF, None, "contraproposta abaixo do mínimo da política")
    amount = min(amount, brand.base_amount)
    return evaluate_installments(brand, amount, installments)


def evaluate_installments(brand: Brand, amount: Decimal, installments: int | None) -> Evaluation:
    if installments is None:
        return Evaluation(
            Verdict.NEEDS_INPUT,
            Offer(amount, max_installments_for(brand, amount)),
            "parcelamento sem número de parcelas",
        )
    if installments < 1:
        return Evaluation(Verdict.NEEDS_INPUT, None, "número de parcelas inválido")
    if installments > max_installments_for(brand, amount):
        return Evaluation(
            Verdict.HANDOFF, None, "parcelamento acima do máximo permitido pela política"
        )
    return Evaluation(Verdict.ACCEPTABLE, Offer(amount, installments), "dentro da política")
