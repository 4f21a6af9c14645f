"""Which amount of a turn is a counteroffer (issue 17: "paguei 50 de frete" is not one)."""

from decimal import Decimal

import pytest

from api.assistant.context import Turn

pytestmark = pytest.mark.unit


def _amount(value: str, start: int, end: int, role: str | None = None) -> dict[str, object]:
    entity: dict[str, object] = {"entity": "amount", "value": value, "start": start, "end": end}
    if role is not None:
        entity["role"] = role
    return entity


def test_an_amount_only_mentioned_is_not_a_counteroffer() -> None:
    turn = Turn(
        text="paguei R$ 50 de frete",
        intent="negotiate_amount",
        entities=[_amount("50.00", 7, 12, role="mention")],
    )

    assert turn.first_amount() is None


def test_the_offered_amount_is_taken_after_a_mentioned_one() -> None:
    turn = Turn(
        text="paguei R$ 50 de frete, consigo pagar R$ 300",
        intent="negotiate_amount",
        entities=[_amount("50.00", 7, 12, role="mention"), _amount("300.00", 37, 43)],
    )

    assert turn.first_amount() == Decimal("300.00")
