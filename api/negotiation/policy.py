"""Decisions the bot may take alone; anything outside the brand's policy goes to a person.

The policy model (DOMAIN.md, "Negotiation policy"):
- the case's amount is what the notice states and the first figure the bot says; the brand's
  base amount stands in only for a case imported without one;
- the bot may accept, at the infringer's own figure, any amount from the lowest acceptable
  amount up to the case's amount. The lowest acceptable amount is bounded by the brand's
  maximum discount (a percentage of the case's amount) and by its absolute floor — whichever
  of the two is stricter when both are set, no discount at all when neither is — and never
  above the case's amount itself;
- installments: at most the brand's maximum, and no installment below its minimum amount.
Anything else (below the lowest amount, above the case's amount, too many installments) is
decided by a person.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal

from api.brands.models import Brand

CENT = Decimal("0.01")


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
        return (self.amount / self.installments).quantize(CENT, rounding=ROUND_UP)


@dataclass(frozen=True)
class Evaluation:
    verdict: Verdict
    offer: Offer | None
    reason: str


def case_amount(brand: Brand, claimed: Decimal | None) -> Decimal:
    """The amount the notice states; the brand's base amount only for a case without one."""
    return claimed if claimed is not None and claimed > 0 else brand.base_amount


def lowest_acceptable(brand: Brand, claimed: Decimal | None) -> Decimal:
    """The least the bot may accept alone for this case (see the module docstring)."""
    amount = case_amount(brand, claimed)
    bounds: list[Decimal] = []
    if brand.max_discount_percent is not None:
        kept = amount * (Decimal(100) - brand.max_discount_percent) / Decimal(100)
        bounds.append(kept.quantize(CENT, rounding=ROUND_UP))
    if brand.floor_amount is not None:
        bounds.append(brand.floor_amount)
    return min(amount, max(bounds)) if bounds else amount


def max_installments_for(brand: Brand, amount: Decimal) -> int:
    """The brand's cap, lowered so no installment falls below its minimum amount."""
    if not brand.min_installment_amount:
        return max(1, brand.max_installments)
    return max(1, min(brand.max_installments, int(amount // brand.min_installment_amount)))


def opening_offer(brand: Brand, claimed: Decimal | None) -> Offer:
    """The first figure the bot states: the case's amount, in one payment."""
    return Offer(amount=case_amount(brand, claimed), installments=1)


def evaluate_counteroffer(
    brand: Brand, claimed: Decimal | None, amount: Decimal | None, installments: int = 1
) -> Evaluation:
    """An amount (and installments) the infringer offers, against the policy for this case."""
    if amount is None or amount <= 0:
        return Evaluation(Verdict.NEEDS_INPUT, None, "contraproposta sem valor")
    # Whole cents, rounded in the firm's favour: an offer is never lowered by us.
    amount = amount.quantize(CENT, rounding=ROUND_UP)
    if amount < lowest_acceptable(brand, claimed):
        return Evaluation(Verdict.HANDOFF, None, "contraproposta abaixo do mínimo da política")
    if amount > case_amount(brand, claimed):
        return Evaluation(Verdict.HANDOFF, None, "contraproposta acima do valor do caso")
    return evaluate_installments(brand, amount, installments)


def evaluate_installments(brand: Brand, amount: Decimal, installments: int | None) -> Evaluation:
    """A number of installments for an amount already within policy."""
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


def check_terms(brand: Brand, claimed: Decimal | None, offer: Offer) -> Evaluation:
    """Whether the bot may agree to exactly these terms for this case."""
    evaluation = evaluate_counteroffer(brand, claimed, offer.amount, offer.installments)
    if evaluation.offer is not None and evaluation.offer != offer:
        return Evaluation(Verdict.HANDOFF, None, "termos diferentes dos avaliados")
    return evaluation
