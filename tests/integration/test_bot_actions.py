"""The custom actions, called the way Rasa calls them, against the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case, Listing, ListingStatus
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel, Conversation, Holder
from api.conversations.service import create_conversation, sender_id_for
from api.db import unit_of_work
from api.payments.boleto import is_valid_digitable_line
from api.payments.pix import is_valid_pix
from api.timeline.models import EntryKind
from api.timeline.service import get_case_timeline
from tests.factories import make_brand, make_case, make_infringer, valid_cpf

pytestmark = pytest.mark.integration

TOKEN = "dev-action-token"


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def setup_case(
    *, status: CaseStatus = CaseStatus.NOTIFICADO, phone: str | None = None
) -> tuple[int, int, str]:
    """A case with a WhatsApp conversation; returns (case_id, conversation_id, sender_id)."""
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=Decimal("2000.00"),
            floor_amount=Decimal("1200.00"),
            max_installments=6,
            min_installment_amount=Decimal("100.00"),
        )
        phone = phone or f"+55119{abs(hash(brand.name)) % 10**8:08d}"
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(
            session,
            brand=brand,
            infringer=infringer,
            status=status,
            listings=("https://produto.mercadolivre.com.br/MLB-1", "https://shopee.com.br/a-i.1.2"),
        )
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        return case.id, conversation.id, sender_id_for(conversation)


async def run(
    client: httpx.AsyncClient,
    action: str,
    sender: str,
    *,
    text: str = "",
    intent: str = "greet",
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    history: list[str] | None = None,
    channel: str = "whatsapp",
) -> dict[str, Any]:
    """POST an action call shaped like Rasa 3.6's."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.95},
        "entities": entities or [],
        "metadata": {"channel": channel},
    }
    events = [
        {"event": "user", "text": t, "parse_data": {"intent": {"name": i}}}
        for i, t in [(h, h) for h in history or []]
    ] + [{"event": "user", "text": text, "parse_data": latest}]
    call = {
        "next_action": action,
        "sender_id": sender,
        "version": "3.6.21",
        "domain": {"slots": {}, "responses": {}},
        "tracker": {
            "sender_id": sender,
            "slots": {"offer_amount": None, "offer_installments": None, **(slots or {})},
            "latest_message": latest,
            "events": events,
            "paused": False,
            "latest_action_name": "action_listen",
        },
    }
    response = await client.post(f"/actions/webhook?token={TOKEN}", json=call)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def said(body: dict[str, Any]) -> list[str]:
    return [r["response"] for r in body["responses"]]


def slots(body: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in body["events"] if e["event"] == "slot"}


def paused(body: dict[str, Any]) -> bool:
    return any(e["event"] == "pause" for e in body["events"])


async def load(case_id: int, conversation_id: int) -> tuple[Case, Conversation]:
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        conversation = await session.get(Conversation, conversation_id)
        assert case is not None and conversation is not None
        return case, conversation


async def test_a_wrong_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/actions/webhook?token=nope", json={"next_action": "x"})
    assert response.status_code == 401


async def test_asking_the_amount_offers_the_policy_and_moves_to_negotiation(
    client: httpx.AsyncClient,
) -> None:
    case_id, conv_id, sender = await setup_case()
    body = await run(client, "action_ask_amount", sender, text="quanto é?", intent="ask_amount")
    assert said(body) == ["utter_offer"]
    offer = body["responses"][0]
    assert (offer["amount"], offer["max_installments"], offer["installment_amount"]) == (
        "R$ 2.000,00",
        "6",
        "R$ 333,34",
    )
    assert slots(body) == {"offer_amount": "2000.00", "offer_installments": 1.0}
    case, _ = await load(case_id, conv_id)
    assert case.status is CaseStatus.EM_NEGOCIACAO


async def test_a_counteroffer_below_the_floor_is_handed_off_never_accepted(
    client: httpx.AsyncClient,
) -> None:
    case_id, conv_id, sender = await setup_case()
    body = await run(
        client,
        "action_counteroffer",
        sender,
        text="pago 500 reais",
        intent="negotiate_amount",
        entities=[{"entity": "amount", "value": "500.00"}],
    )
    assert said(body) == ["utter_counteroffer_needs_analyst", "utter_handoff"]
    assert paused(body)
    case, conversation = await load(case_id, conv_id)
    assert conversation.holder is Holder.WAITING_HUMAN
    assert conversation.handoff_reason == "contraproposta abaixo do mínimo da política"
    assert case.agreed_amount is None and case.status is CaseStatus.EM_NEGOCIACAO


async def test_counteroffer_within_policy_then_yes_proposes_agreement_and_sends_payment(
    client: httpx.AsyncClient,
) -> None:
    case_id, conv_id, sender = await setup_case()
    proposal = await run(
        client,
        "action_counteroffer",
        sender,
        text="consigo 1500 em 3x",
        intent="negotiate_amount",
        entities=[
            {"entity": "amount", "value": "1500.00"},
            {"entity": "installments", "value": "3"},
        ],
    )
    assert said(proposal) == ["utter_propose_terms"]
    assert proposal["responses"][0]["installment_amount"] == "R$ 500,00"
    accepted = await run(
        client, "action_affirm", sender, text="sim", intent="affirm", slots=slots(proposal)
    )
    assert said(accepted) == ["utter_agreement_registered", "utter_payment_details"]
    details = accepted["responses"][1]
    assert is_valid_pix(details["pix"])
    assert is_valid_digitable_line(details["boleto"])
    assert details["amount"] == "R$ 1.500,00" and details["installments"] == "3"
    assert slots(accepted) == {"offer_amount": None, "offer_installments": None}
    case, _ = await load(case_id, conv_id)
    assert case.status is CaseStatus.ACORDO_PROPOSTO
    assert (case.agreed_amount, case.agreed_installments) == (Decimal("1500.00"), 3)

    page = await client.get(details["payment_link"].replace("http://127.0.0.1:8000", ""))
    assert page.status_code == 200
    assert details["pix"] in page.text and "Parcela 3/3" in page.text


async def test_installments_beyond_the_cap_are_handed_off(client: httpx.AsyncClient) -> None:
    _, _, sender = await setup_case()
    body = await run(
        client,
        "action_installments",
        sender,
        text="12x?",
        intent="ask_installments",
        entities=[{"entity": "installments", "value": "12"}],
    )
    assert said(body)[0] == "utter_counteroffer_needs_analyst" and paused(body)


async def test_already_removed_marks_listings_pending_verification(
    client: httpx.AsyncClient,
) -> None:
    case_id, _, sender = await setup_case()
    body = await run(
        client, "action_removal_done", sender, text="ja tirei", intent="already_removed"
    )
    assert said(body) == ["utter_removal_recorded"]
    async with unit_of_work() as session:
        statuses = set(
            await session.scalars(sa.select(Listing.status).where(Listing.case_id == case_id))
        )
        entries = await get_case_timeline(session, case_id=case_id)
    assert statuses == {ListingStatus.REMOVAL_PENDING}
    assert sum(e.kind is EntryKind.LISTING for e in entries) == 2


async def test_i_paid_never_marks_the_case_paid(client: httpx.AsyncClient) -> None:
    case_id, conv_id, sender = await setup_case(status=CaseStatus.EM_NEGOCIACAO)
    body = await run(client, "action_inform_paid", sender, text="paguei", intent="inform_paid")
    assert said(body) == ["utter_payment_pending_confirmation"]
    case, _ = await load(case_id, conv_id)
    assert case.status is CaseStatus.EM_NEGOCIACAO
    async with unit_of_work() as session:
        last = (await get_case_timeline(session, case_id=case_id))[-1]
    assert last.kind is EntryKind.NOTE and "aguardando confirmação" in last.summary


async def test_claim_of_originality_asks_for_invoice_records_and_hands_off(
    client: httpx.AsyncClient,
) -> None:
    case_id, conv_id, sender = await setup_case()
    body = await run(
        client,
        "action_claim_original",
        sender,
        text="é original tenho nota",
        intent="claim_original",
    )
    assert said(body) == ["utter_ask_invoice", "utter_handoff"] and paused(body)
    case, conversation = await load(case_id, conv_id)
    assert case.status is CaseStatus.EM_CONTESTACAO
    assert conversation.holder is Holder.WAITING_HUMAN


async def test_unknown_sender_is_asked_to_identify_and_linked_by_cpf(
    client: httpx.AsyncClient,
) -> None:
    case_id, _, _ = await setup_case()
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        infringer = case.infringer
        document = infringer.document
        unknown = await do_identify_sender(session, kind=ContactKind.PHONE, raw="+5548991112222")
        conversation = await create_conversation(
            session,
            contact=unknown.contact,
            channel=Channel.WHATSAPP,
            address="+5548991112222",
            case=None,
        )
        sender = sender_id_for(conversation)
    hello = await run(client, "action_greet", sender, text="oi", intent="greet")
    assert said(hello) == ["utter_greet_unknown"]
    doc = await run(
        client,
        "action_inform_document",
        sender,
        text=f"meu cpf é {document}",
        intent="inform_document",
        entities=[{"entity": "cpf", "value": document}],
    )
    assert said(doc) == ["utter_identified"]
    assert doc["responses"][0]["case_ref"] == case.reference
    async with unit_of_work() as session:
        linked = await session.get(Conversation, conversation.id)
        contact = await session.get(ContactPoint, unknown.contact.id)
    assert linked is not None and linked.case_id == case_id
    assert contact is not None and contact.infringer_id == infringer.id


async def test_an_unknown_document_is_not_linked(client: httpx.AsyncClient) -> None:
    async with unit_of_work() as session:
        unknown = await do_identify_sender(session, kind=ContactKind.PHONE, raw="+5548993334444")
        conversation = await create_conversation(
            session, contact=unknown.contact, channel=Channel.WHATSAPP, address="x", case=None
        )
        sender = sender_id_for(conversation)
    cpf = valid_cpf(987654)
    body = await run(
        client,
        "action_inform_document",
        sender,
        intent="inform_document",
        entities=[{"entity": "cpf", "value": cpf}],
    )
    assert said(body) == ["utter_document_not_found"]


async def test_opt_out_suppresses_the_contact_and_confirms_last(client: httpx.AsyncClient) -> None:
    _, conv_id, sender = await setup_case()
    body = await run(client, "action_opt_out", sender, text="SAIR", intent="opt_out")
    assert said(body) == ["utter_opt_out_confirmed"] and paused(body)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conv_id)
        assert conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
    assert contact is not None and contact.opted_out_at is not None
    assert conversation.holder is Holder.WAITING_HUMAN


async def test_second_fallback_in_a_row_hands_off(client: httpx.AsyncClient) -> None:
    _, _, sender = await setup_case()
    first = await run(client, "action_fallback", sender, text="asdf", intent="nlu_fallback")
    assert said(first) == ["utter_please_rephrase"] and not paused(first)
    second = await run(
        client,
        "action_fallback",
        sender,
        text="qual o clima",
        intent="out_of_scope",
        history=["nlu_fallback"],
    )
    assert said(second) == ["utter_handoff"] and paused(second)


async def test_a_repeated_payment_problem_goes_to_a_person(client: httpx.AsyncClient) -> None:
    _, _, sender = await setup_case(status=CaseStatus.EM_NEGOCIACAO)
    proposal = await run(client, "action_ask_amount", sender, intent="ask_amount")
    await run(
        client, "action_accept_agreement", sender, intent="accept_agreement", slots=slots(proposal)
    )
    first = await run(client, "action_payment_problem", sender, intent="payment_problem")
    assert said(first)[:2] == ["utter_payment_fresh", "utter_payment_details"]
    second = await run(
        client,
        "action_payment_problem",
        sender,
        intent="payment_problem",
        history=["payment_problem"],
    )
    assert said(second) == ["utter_payment_problem_handoff", "utter_handoff"]


async def test_deadline_question_and_extension_request(client: httpx.AsyncClient) -> None:
    _, _, sender = await setup_case()
    asked = await run(
        client, "action_deadline", sender, text="qual o prazo?", intent="ask_deadline"
    )
    assert said(asked) == ["utter_deadline"]
    extension = await run(
        client, "action_deadline", sender, text="me da mais uns dias", intent="ask_deadline"
    )
    assert said(extension) == ["utter_extension_recorded", "utter_handoff"]


async def test_notice_link_opens_the_case_notice(client: httpx.AsyncClient) -> None:
    _, _, sender = await setup_case()
    body = await run(
        client,
        "action_send_notice",
        sender,
        text="manda o documento",
        intent="request_notice_document",
    )
    url = body["responses"][0]["notice_url"].replace("http://127.0.0.1:8000", "")
    page = await client.get(url)
    assert page.status_code == 200
    assert "MLB-1" in page.text and "Notificação extrajudicial" in page.text
    assert (await client.get("/notificacao/not-a-token")).status_code == 404
