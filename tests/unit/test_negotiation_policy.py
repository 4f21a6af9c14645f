"""The settlement policy: the case's amount first, discounts bounded relative to the case, offers
within policy accepted at the infringer's own figure (issue 9, defect 2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.brands.models import Brand
from api.brands.service import check_policy, describe_policy
from api.errors import ValidationFailed
from api.negotiation.policy import (
    Offer,
    Verdict,
    check_terms,
    evaluate_counteroffer,
    evaluate_installments,
    lowest_acceptable,
    max_installments_for,
    opening_offer,
)

pytestmark = pytest.mark.unit
D = Decimal


def brand(
    *,
    base: str = "1500.00",
    floor: str | None = "1000.00",
    discount: str | None = None,
    max_installments: int = 6,
    min_installment: str = "100.00",
) -> Brand:
    return Brand(
        name="Marca",
        base_amount=D(base),
        floor_amount=D(floor) if floor else None,
        max_discount_percent=D(discount) if discount else None,
        max_installments=max_installments,
        min_installment_amount=D(min_installment),
    )


def test_the_opening_figure_is_the_cases_amount_even_above_the_brands_base() -> None:
    assert opening_offer(brand(base="1500.00"), D("2500.00")) == Offer(D("2500.00"), 1)


def test_a_case_without_an_amount_opens_at_the_brands_base() -> None:
    assert opening_offer(brand(base="1500.00"), None) == Offer(D("1500.00"), 1)


def test_an_offer_within_policy_is_accepted_at_the_infringers_figure_never_lowered() -> None:
    evaluation = evaluate_counteroffer(brand(base="1500.00"), D("2500.00"), D("1800.00"), 1)
    assert evaluation.verdict is Verdict.ACCEPTABLE
    assert evaluation.offer == Offer(D("1800.00"), 1)


def test_the_floor_alone_bounds_the_discount() -> None:
    policy = brand(floor="1000.00")
    assert lowest_acceptable(policy, D("2500.00")) == D("1000.00")
    assert evaluate_counteroffer(policy, D("2500.00"), D("999.99")).verdict is Verdict.HANDOFF


def test_the_maximum_discount_alone_is_relative_to_the_case() -> None:
    policy = brand(floor=None, discount="20")
    assert lowest_acceptable(policy, D("2500.00")) == D("2000.00")
    assert lowest_acceptable(policy, D("1000.00")) == D("800.00")
    assert evaluate_counteroffer(policy, D("2500.00"), D("2000.00")).verdict is Verdict.ACCEPTABLE
    assert evaluate_counteroffer(policy, D("2500.00"), D("1999.99")).verdict is Verdict.HANDOFF


def test_with_both_bounds_the_stricter_applies() -> None:
    policy = brand(floor="1000.00", discount="50")
    assert lowest_acceptable(policy, D("3000.00")) == D("1500.00")  # the discount is stricter
    assert lowest_acceptable(policy, D("1600.00")) == D("1000.00")  # the floor is stricter


def test_without_any_bound_there_is_no_discount() -> None:
    policy = brand(floor=None, discount=None)
    assert lowest_acceptable(policy, D("2500.00")) == D("2500.00")
    assert evaluate_counteroffer(policy, D("2500.00"), D("2499.99")).verdict is Verdict.HANDOFF


def test_a_case_below_the_floor_is_still_payable_at_its_own_amount() -> None:
    policy = brand(floor="1000.00")
    assert lowest_acceptable(policy, D("800.00")) == D("800.00")
    assert evaluate_counteroffer(policy, D("800.00"), D("800.00")).verdict is Verdict.ACCEPTABLE


def test_a_discount_rounds_in_the_firms_favour() -> None:
    # 2333.33 kept at 85% is 1983.3305: the bot may not go one cent lower than 1983.34.
    policy = brand(floor=None, discount="15")
    assert lowest_acceptable(policy, D("2333.33")) == D("1983.34")


def test_an_offer_above_the_cases_amount_goes_to_a_person() -> None:
    evaluation = evaluate_counteroffer(brand(), D("2500.00"), D("2600.00"))
    assert evaluation.verdict is Verdict.HANDOFF
    assert evaluation.reason == "contraproposta acima do valor do caso"


def test_installments_are_bounded_by_the_cap_and_the_minimum_installment() -> None:
    policy = brand(max_installments=6, min_installment="500.00")
    assert evaluate_counteroffer(policy, D("2500.00"), D("2000.00"), 4).offer == Offer(
        D("2000.00"), 4
    )
    assert evaluate_counteroffer(policy, D("2500.00"), D("2000.00"), 5).verdict is Verdict.HANDOFF


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_discount_percent": D("120")}, "entre 0% e 100%"),
        ({"max_discount_percent": D("100"), "floor_amount": None}, "exige um valor mínimo"),
        ({"floor_amount": D("3000")}, "não pode ser maior que o valor base"),
    ],
)
def test_invalid_policies_are_refused(values: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "base_amount": D("2000"),
        "floor_amount": D("1000"),
        "max_installments": 3,
        **values,
    }
    with pytest.raises(ValidationFailed, match=message):
        check_policy(**arguments)  # type: ignore[arg-type]


def test_the_policy_is_described_for_the_operator() -> None:
    assert describe_policy(brand(floor="1000.00", discount="30")) == (
        "valor padrão R$ 1.500,00 (casos sem valor); desconto de até 30% do valor do caso "
        "e nunca abaixo de R$ 1.000,00; até 6x, parcela mínima R$ 100,00"
    )


def test_a_brand_without_a_minimum_installment_allows_its_full_cap() -> None:
    policy = brand(max_installments=6, min_installment="0")
    assert evaluate_counteroffer(policy, D("300.00"), D("300.00"), 6).verdict is Verdict.ACCEPTABLE


# --- gaps filled in issue 11 ------------------------------------------------------------------


@pytest.mark.parametrize("amount", [None, D("0"), D("-10.00")])
def test_an_offer_without_a_positive_amount_asks_for_one(amount: Decimal | None) -> None:
    evaluation = evaluate_counteroffer(brand(), D("2500.00"), amount)
    assert (evaluation.verdict, evaluation.offer) == (Verdict.NEEDS_INPUT, None)


def test_fractions_of_a_cent_round_up_so_the_offer_is_never_lowered() -> None:
    policy = brand(floor="1000.00")
    # 999.991 is 1000.00 once in whole cents (in the firm's favour): acceptable at the floor.
    evaluation = evaluate_counteroffer(policy, D("2500.00"), D("999.991"))
    assert evaluation.verdict is Verdict.ACCEPTABLE
    assert evaluation.offer == Offer(D("1000.00"), 1)


def test_an_offer_exactly_at_the_cases_amount_and_at_the_lowest_is_acceptable() -> None:
    policy = brand(floor="1000.00")
    assert evaluate_counteroffer(policy, D("2500.00"), D("2500.00")).verdict is Verdict.ACCEPTABLE
    assert evaluate_counteroffer(policy, D("2500.00"), D("1000.00")).verdict is Verdict.ACCEPTABLE
    assert evaluate_counteroffer(policy, D("2500.00"), D("2500.01")).verdict is Verdict.HANDOFF


def test_installments_without_a_number_propose_the_most_allowed() -> None:
    evaluation = evaluate_installments(brand(max_installments=6), D("450.00"), None)
    assert evaluation.verdict is Verdict.NEEDS_INPUT
    assert evaluation.offer == Offer(D("450.00"), 4)  # 4 x 112.50; a 5th would be below 100


@pytest.mark.parametrize("installments", [0, -3])
def test_a_non_positive_number_of_installments_is_not_an_offer(installments: int) -> None:
    evaluation = evaluate_installments(brand(), D("1200.00"), installments)
    assert (evaluation.verdict, evaluation.offer) == (Verdict.NEEDS_INPUT, None)


def test_an_amount_below_one_minimum_installment_still_allows_one_payment() -> None:
    assert max_installments_for(brand(min_installment="100.00"), D("60.00")) == 1
    assert evaluate_installments(brand(), D("60.00"), 1).verdict is Verdict.ACCEPTABLE
    assert evaluate_installments(brand(), D("60.00"), 2).verdict is Verdict.HANDOFF


def test_an_installment_amount_rounds_up_to_the_cent() -> None:
    assert Offer(D("1000.00"), 3).installment_amount == D("333.34")


def test_check_terms_accepts_exactly_the_evaluated_terms() -> None:
    policy = brand(floor="1000.00", max_installments=6)
    accepted = check_terms(policy, D("2500.00"), Offer(D("1200.00"), 3))
    assert accepted.verdict is Verdict.ACCEPTABLE and accepted.offer == Offer(D("1200.00"), 3)
    # A fraction of a cent is terms the policy did not evaluate: a person decides.
    changed = check_terms(policy, D("2500.00"), Offer(D("1200.001"), 3))
    assert (changed.verdict, changed.offer) == (Verdict.HANDOFF, None)
    too_many = check_terms(policy, D("2500.00"), Offer(D("1200.00"), 12))
    assert too_many.verdict is Verdict.HANDOFF
