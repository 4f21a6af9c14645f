"""Money in the bot's conversation (issue 9, defects 1-3), through the action server as Rasa calls
it, against the real database: the figures come from the case, offers within policy are taken at
the infringer's figure, and every payment detail sent states exactly the current agreement."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.brands.service import get_brand_by_name
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel
from api.conversations.service import create_conversation, sender_id_for
from api.db import unit_of_work
from api.payments.models import InstallmentStatus, PaymentRequest
from api.payments.pix import is_valid_pix, parse_tlv
from api.timeline.service import get_case_timeline
from tests.factories import make_brand, make_case, make_infringer
from tests.integration.test_bot_actions import paused, run, said, slots

pytestmark = pytest.mark.integration
D = Decimal
_phones = iter(range(10_000))


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def scene(
    *,
    claimed: str | None = "2500.00",
    base: str = "2500.00",
    floor: str | None = "1500.00",
    discount: str | None = None,
    min_installment: str = "250.00",
) -> tuple[int, str]:
    """A notified case with a WhatsApp conversation (the demo policy unless told otherwise)."""
    phone = f"+5511977{next(_phones):06d}"
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=D(base),
            floor_amount=D(floor) if floor else None,
            max_discount_percent=D(discount) if discount else None,
            max_installments=6,
            min_installment_amount=D(min_installment),
        )
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = D(claimed) if claimed else None
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        return case.id, sender_id_for(conversation)


def amount(value: str) -> list[dict[str, Any]]:
    return [{"entity": "amount", "value": value}]


def times(count: int) -> list[dict[str, Any]]:
    return [{"entity": "installments", "value": str(count)}]


def response(body: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [r for r in body["responses"] if r["response"] == name]
    return found


async def payment_requests(case_id: int) -> list[PaymentRequest]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(PaymentRequest)
            .where(PaymentRequest.case_id == case_id)
            .order_by(PaymentRequest.id)
        )
        return list(rows)


async def case_terms(case_id: int) -> tuple[Decimal | None, int | None]:
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        return case.agreed_amount, case.agreed_installments


async def summaries(case_id: int) -> list[str]:
    async with unit_of_work() as session:
        return [entry.summary for entry in await get_case_timeline(session, case_id=case_id)]


# ----------------------------------------------------------------------------- defect 1


async def test_a_renegotiated_agreement_cancels_the_old_payment_and_sends_only_the_new_terms(
    client: httpx.AsyncClient,
) -> None:
    """The demo sequence of defect 1: 2.500,00 in 3x agreed and paid for, then 2.000,00 in 1x."""
    case_id, sender = await scene()
    offer = await run(client, "action_ask_amount", sender, text="quanto é?", intent="ask_amount")
    assert response(offer, "utter_offer")["amount"] == "R$ 2.500,00"
    three = await run(
        client,
        "action_installments",
        sender,
        text="posso parcelar em 3x?",
        intent="ask_installments",
        entities=times(3),
        slots=slots(offer),
    )
    first = await run(
        client, "action_affirm", sender, text="sim", intent="affirm", slots=slots(three)
    )
    old = response(first, "utter_payment_details")
    assert (old["amount"], old["installments"]) == ("R$ 2.500,00", "3")

    again = await run(
        client, "action_ask_amount", sender, text="quanto tenho q pagar", intent="ask_amount"
    )
    assert said(again) == ["utter_agreed_terms"]
    assert response(again, "utter_agreed_terms")["amount"] == "R$ 2.500,00"
    lower = await run(
        client,
        "action_counteroffer",
        sender,
        text="nao tenho esse dinheiro, consigo pagar 2000",
        intent="negotiate_amount",
        entities=amount("2000.00"),
        slots=slots(again),
    )
    assert response(lower, "utter_propose_terms")["amount"] == "R$ 2.000,00"
    closed = await run(
        client,
        "action_accept_agreement",
        sender,
        text="ok fechado manda o pix",
        intent="accept_agreement",
        slots=slots(lower),
    )
    assert said(closed) == [
        "utter_agreement_registered",
        "utter_previous_payment_cancelled",
        "utter_payment_details",
    ]
    details = response(closed, "utter_payment_details")
    assert (details["amount"], details["installments"], details["installment_amount"]) == (
        "R$ 2.000,00",
        "1",
        "R$ 2.000,00",
    )
    assert is_valid_pix(details["pix"]) and parse_tlv(details["pix"])["54"] == "2000.00"
    warning = response(closed, "utter_previous_payment_cancelled")
    assert (warning["old_amount"], warning["old_installments"]) == ("R$ 2.500,00", "3")

    assert await case_terms(case_id) == (D("2000.00"), 1)
    old_request, new_request = await payment_requests(case_id)
    assert old_request.superseded_at is not None and new_request.superseded_at is None
    assert {i.status for i in old_request.installments} == {InstallmentStatus.CANCELLED}
    assert (new_request.total_amount, new_request.installments_count) == (D("2000.00"), 1)
    assert details["payment_link"].endswith(new_request.public_token)
    timeline = await summaries(case_id)
    assert "Infrator aceitou R$ 2.000,00 em 1x (substitui o acordo de R$ 2.500,00 em 3x)." in (
        timeline
    )
    assert any(s.startswith("Pagamento cancelado: R$ 2.500,00 em 3x") for s in timeline)

    # Asking for the payment again sends the same, current request: nothing new is issued.
    resent = await run(client, "action_send_payment", sender, intent="request_payment")
    assert said(resent) == ["utter_payment_details"]
    assert response(resent, "utter_payment_details")["payment_link"] == details["payment_link"]
    assert len(await payment_requests(case_id)) == 2


async def test_a_payment_request_with_other_terms_is_never_sent(
    client: httpx.AsyncClient,
) -> None:
    """Whatever wrote the agreement, send_payment checks the request against it."""
    case_id, sender = await scene()
    offer = await run(client, "action_ask_amount", sender, intent="ask_amount")
    await run(
        client, "action_accept_agreement", sender, intent="accept_agreement", slots=slots(offer)
    )
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        case.agreed_amount, case.agreed_installments = D("1800.00"), 2
    body = await run(client, "action_send_payment", sender, intent="request_payment")
    details = response(body, "utter_payment_details")
    assert (details["amount"], details["installments"]) == ("R$ 1.800,00", "2")
    requests = await payment_requests(case_id)
    assert [r.superseded_at is None for r in requests] == [False, True]


async def test_a_new_agreement_is_not_taken_by_the_bot_once_an_installment_is_paid(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await scene()
    offer = await run(
        client,
        "action_installments",
        sender,
        intent="ask_installments",
        entities=times(2),
    )
    await run(client, "action_affirm", sender, intent="affirm", slots=slots(offer))
    async with unit_of_work() as session:
        [request] = await session.scalars(
            sa.select(PaymentRequest).where(PaymentRequest.case_id == case_id)
        )
        request.installments[0].status = InstallmentStatus.PAID
    lower = await run(
        client,
        "action_counteroffer",
        sender,
        intent="negotiate_amount",
        entities=amount("2000.00"),
    )
    body = await run(client, "action_affirm", sender, intent="affirm", slots=slots(lower))
    assert paused(body) and "utter_payment_details" not in said(body)
    assert await case_terms(case_id) == (D("2500.00"), 2)
    assert len(await payment_requests(case_id)) == 1


# ----------------------------------------------------------------------------- defect 2


async def test_the_first_figure_is_the_cases_amount_not_the_brands_base(
    client: httpx.AsyncClient,
) -> None:
    _, sender = await scene(claimed="2500.00", base="1500.00", floor="1000.00")
    body = await run(client, "action_ask_amount", sender, text="quanto é?", intent="ask_amount")
    assert response(body, "utter_offer")["amount"] == "R$ 2.500,00"
    assert slots(body)["offer_amount"] == "2500.00"


async def test_a_case_without_an_amount_opens_at_the_brands_base(
    client: httpx.AsyncClient,
) -> None:
    _, sender = await scene(claimed=None, base="1500.00", floor="1000.00")
    body = await run(client, "action_ask_amount", sender, text="quanto é?", intent="ask_amount")
    assert response(body, "utter_offer")["amount"] == "R$ 1.500,00"


async def test_an_offer_within_policy_is_taken_at_the_infringers_figure(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await scene(claimed="2500.00", base="1500.00", floor="1000.00")
    body = await run(
        client,
        "action_counteroffer",
        sender,
        text="consigo pagar 1800 à vista",
        intent="negotiate_amount",
        entities=amount("1800.00"),
    )
    proposal = response(body, "utter_propose_terms")
    assert (proposal["amount"], proposal["installments"]) == ("R$ 1.800,00", "1")
    accepted = await run(client, "action_affirm", sender, intent="affirm", slots=slots(body))
    assert response(accepted, "utter_payment_details")["amount"] == "R$ 1.800,00"
    assert await case_terms(case_id) == (D("1800.00"), 1)


async def test_a_discount_beyond_the_brands_maximum_goes_to_a_person(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await scene(claimed="2500.00", floor=None, discount="20")
    body = await run(
        client,
        "action_counteroffer",
        sender,
        text="pago 1900",
        intent="negotiate_amount",
        entities=amount("1900.00"),
    )
    assert said(body) == ["utter_counteroffer_needs_analyst", "utter_handoff"] and paused(body)
    assert await case_terms(case_id) == (None, None)
    within = await run(
        client,
        "action_counteroffer",
        sender,
        text="pago 2000",
        intent="negotiate_amount",
        entities=amount("2000.00"),
    )
    assert response(within, "utter_propose_terms")["amount"] == "R$ 2.000,00"


# ----------------------------------------------------------------------------- defect 3


@pytest.mark.parametrize(
    ("action", "intent", "text", "entities", "expected"),
    [
        ("action_fallback", "nlu_fallback", "ta bom, faço em 5x entao", times(5), "5"),
        ("action_accept_agreement", "accept_agreement", "ta bom, faço em 5x entao", times(5), "5"),
        ("action_affirm", "affirm", "ok, em 4x entao", times(4), "4"),
        ("action_installments", "ask_installments", "pode ser em 4 vezes?", times(4), "4"),
        ("action_fallback", "nlu_fallback", "à vista então", [], "1"),
        ("action_installments", "ask_installments", "a vista entao", [], "1"),
    ],
)
async def test_changing_the_installments_of_a_proposal_re_proposes_within_policy(
    client: httpx.AsyncClient,
    action: str,
    intent: str,
    text: str,
    entities: list[dict[str, Any]],
    expected: str,
) -> None:
    case_id, sender = await scene()
    lower = await run(
        client,
        "action_counteroffer",
        sender,
        text="consigo 2000 em 2x",
        intent="negotiate_amount",
        entities=amount("2000.00") + times(2),
    )
    body = await run(
        client, action, sender, text=text, intent=intent, entities=entities, slots=slots(lower)
    )
    assert said(body) == ["utter_propose_terms"]
    proposal = response(body, "utter_propose_terms")
    assert (proposal["amount"], proposal["installments"]) == ("R$ 2.000,00", expected)
    assert slots(body) == {"offer_amount": "2000.00", "offer_installments": float(expected)}
    assert await case_terms(case_id) == (None, None)  # re-proposed, not accepted


async def test_more_installments_than_the_policy_allows_go_to_a_person(
    client: httpx.AsyncClient,
) -> None:
    _, sender = await scene()
    offer = await run(client, "action_ask_amount", sender, intent="ask_amount")
    body = await run(
        client,
        "action_fallback",
        sender,
        text="ta bom, faço em 12x entao",
        intent="nlu_fallback",
        entities=times(12),
        slots=slots(offer),
    )
    assert said(body) == ["utter_counteroffer_needs_analyst", "utter_handoff"] and paused(body)


async def test_changing_the_installments_of_an_agreement_keeps_its_amount(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await scene()
    lower = await run(
        client, "action_counteroffer", sender, intent="negotiate_amount", entities=amount("2000.00")
    )
    await run(client, "action_affirm", sender, intent="affirm", slots=slots(lower))
    body = await run(
        client,
        "action_installments",
        sender,
        text="pode ser em 4 vezes?",
        intent="ask_installments",
        entities=times(4),
    )
    proposal = response(body, "utter_propose_terms")
    assert (proposal["amount"], proposal["installments"]) == ("R$ 2.000,00", "4")
    closed = await run(client, "action_affirm", sender, intent="affirm", slots=slots(body))
    details = response(closed, "utter_payment_details")
    assert (details["amount"], details["installments"]) == ("R$ 2.000,00", "4")
    assert await case_terms(case_id) == (D("2000.00"), 4)


# ----------------------------------------------------------------------------- operators


def tratativa(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    script = Path(sys.executable).with_name("tratativa")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=60)


async def test_brands_create_takes_the_discount_policy(database_url: str) -> None:
    created = tratativa(
        "brands",
        "create",
        "Marca Política CLI",
        "--base",
        "2000",
        "--max-discount",
        "25",
        "--max-installments",
        "4",
        "--pix-key",
        "12345678000195",
        database_url=database_url,
    )
    assert created.returncode == 0, created.stderr
    assert "desconto de até 25% do valor do caso" in created.stdout
    async with unit_of_work() as session:
        brand = await get_brand_by_name(session, name="Marca Política CLI")
        assert brand is not None
        assert (brand.max_discount_percent, brand.floor_amount) == (D("25.00"), None)

    refused = tratativa(
        "brands",
        "create",
        "Outra",
        "--base",
        "2000",
        "--max-discount",
        "150",
        database_url=database_url,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert "entre 0% e 100%" in refused.stderr


async def test_the_bot_does_not_change_an_agreement_already_signed(
    client: httpx.AsyncClient,
) -> None:
    case_id, sender = await scene()
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        case.status = CaseStatus.ACORDO_ASSINADO  # an analyst formalized 2.500,00 em 1x
        case.agreed_amount, case.agreed_installments = D("2500.00"), 1
    lower = await run(
        client, "action_counteroffer", sender, intent="negotiate_amount", entities=amount("2000.00")
    )
    body = await run(client, "action_affirm", sender, intent="affirm", slots=slots(lower))
    assert paused(body) and "utter_payment_details" not in said(body)
    assert await case_terms(case_id) == (D("2500.00"), 1)
    assert await payment_requests(case_id) == []
