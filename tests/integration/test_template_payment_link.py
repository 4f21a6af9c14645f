"""An analyst's template carries a payment link only when it states the case's agreement."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.templates.service import variables_for_case
from api.timeline.service import Actor
from tests.factories import make_brand, make_case

pytestmark = pytest.mark.integration


async def test_the_link_is_given_only_for_the_agreed_terms(session: AsyncSession) -> None:
    brand = await make_brand(session)
    case = await make_case(session, brand=brand)
    case.agreed_amount, case.agreed_installments = Decimal("2500.00"), 3
    request = await do_issue_payment_request(
        session,
        case=case,
        brand=brand,
        amount=Decimal("2500.00"),
        installments=3,
        provider=get_payment_provider(),
        actor=Actor.bot(),
    )
    await session.flush()
    await session.refresh(case, ["brand", "infringer"])
    values = await variables_for_case(session, case)
    assert values["payment_link"].endswith("/pagamento/" + request.public_token)
    assert values["amount"] == "R$ 2.500,00"

    # The agreement changes and nothing has reissued the details yet: no stale link leaves.
    case.agreed_amount, case.agreed_installments = Decimal("2000.00"), 1
    values = await variables_for_case(session, case)
    assert "payment_link" not in values
    assert values["amount"] == "R$ 2.000,00"
