"""Property-based tests of the negotiation (issue 9, "Proof").

Hypothesis draws a brand policy, a case and a random sequence of infringer moves (ask the amount,
counteroffer with any amount and installments, change the installments, accept, deny, ask for
the payment, report a payment problem, renegotiate after accepting). Each move runs the custom
action Rasa's rules map its intent to (data/rules.yml) exactly as the action server runs it:
the real flows in one transaction against the real database. After every turn the invariants are
checked against the database and against an oracle of the policy written here from DOMAIN.md:

- every payment detail sent states exactly the case's current agreed amount and installments,
  and points to the current payment request, which asks for just that;
- the agreed terms, and every term the bot proposes, are within the brand's policy;
- a superseded payment request is cancelled (no open installment) and on the timeline;
- the first figure the bot states on its own is the case's amount;
- an offer within policy is answered with exactly that offer, never with a lower figure.

A handoff is followed by the analyst handing the conversation back, so sequences go on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import flows as action_classes
from actions.base import FlowAction
from api.assistant.context import load_case
from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel, Conversation, Holder
from api.conversations.service import create_conversation, sender_id_for
from api.db import unit_of_work
from api.payments.models import InstallmentStatus, PaymentRequest
from api.payments.pix import parse_tlv
from api.timeline.service import get_case_timeline
from tests.factories import make_brand, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CENT = Decimal("0.01")
RULES = Path(__file__).resolve().parents[2] / "data" / "rules.yml"
# Each intent's action, read from the bot's own rules so the test follows them.
ACTION_FOR_INTENT: dict[str, str] = {
    rule["steps"][0]["intent"]: rule["steps"][1]["action"]
    for rule in yaml.safe_load(RULES.read_text(encoding="utf-8"))["rules"]
    if len(rule["steps"]) == 2 and "intent" in rule["steps"][0]
}
ACTIONS: dict[str, FlowAction] = {
    action.action_name: action
    for action in (
        getattr(action_classes, name)() for name in dir(action_classes) if name.startswith("Action")
    )
    if isinstance(action, FlowAction)
}
# Responses that state terms the bot proposes (slots carry them for the next "sim").
PROPOSALS = {"utter_propose_terms", "utter_agreed_terms"}
OPENINGS = {"utter_offer", "utter_ask_counteroffer"}

_phones = iter(range(10**6))


def cents(value: int) -> Decimal:
    return (Decimal(value) / 100).quantize(CENT)


# ----------------------------------------------------------------------------- the oracle


@dataclass(frozen=True)
class Policy:
    """DOMAIN.md's policy for one case, computed here independently of api.negotiation."""

    base: Decimal
    floor: Decimal | None
    discount: Decimal | None
    max_installments: int
    min_installment: Decimal
    claimed: Decimal | None

    @property
    def case_amount(self) -> Decimal:
        return self.claimed if self.claimed is not None else self.base

    @property
    def lowest(self) -> Decimal:
        bounds = []
        if self.discount is not None:
            kept = self.case_amount * (100 - self.discount) / 100
            bounds.append(kept.quantize(CENT, rounding=ROUND_UP))
        if self.floor is not None:
            bounds.append(self.floor)
        return min(self.case_amount, max(bounds)) if bounds else self.case_amount

    def amount_ok(self, amount: Decimal) -> bool:
        return self.lowest <= amount <= self.case_amount

    def installments_ok(self, amount: Decimal, count: int) -> bool:
        if not 1 <= count <= max(1, self.max_installments):
            return False
        return count == 1 or amount / count >= self.min_installment

    def allows(self, amount: Decimal, count: int) -> bool:
        return self.amount_ok(amount) and self.installments_ok(amount, count)


# ----------------------------------------------------------------------------- moves


@dataclass(frozen=True)
class Move:
    intent: str
    text: str
    amount: Decimal | None = None
    installments: int | None = None

    def entities(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        if self.amount is not None:
            found.append({"entity": "amount", "value": str(self.amount)})
        if self.installments is not None:
            found.append({"entity": "installments", "value": str(self.installments)})
        return found


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    base = cents(draw(st.integers(20_000, 800_000)))
    floor = draw(st.none() | st.integers(1_000, int(base * 100)).map(cents))
    discount = draw(st.none() | st.integers(0, 9_500).map(cents))
    return Policy(
        base=base,
        floor=floor,
        discount=discount,
        max_installments=draw(st.integers(1, 12)),
        min_installment=draw(
            st.sampled_from([Decimal(0), Decimal(50), Decimal(100), Decimal(250)])
        ),
        claimed=draw(st.none() | st.integers(10_000, 1_500_000).map(cents)),
    )


def moves(policy: Policy) -> st.SearchStrategy[list[Move]]:
    case, lowest = policy.case_amount, policy.lowest
    within = st.integers(int(lowest * 100), int(case * 100)).map(cents)
    amounts = st.one_of(
        st.sampled_from([case, lowest, max(lowest - CENT, CENT), case + CENT]),
        within,
        st.integers(1, int(case * 150)).map(cents),
    )
    counts = st.integers(1, 14)

    def offer(a: Decimal, n: int | None) -> Move:
        text = f"consigo pagar {a}" + (f" em {n}x" if n else "")
        return Move("negotiate_amount", text, amount=a, installments=n)

    any_offer = st.builds(offer, amounts, st.none() | counts)
    # Offers the policy allows more often than chance would, so agreements (and renegotiated
    # agreements) happen in most conversations.
    fair_offer = st.builds(offer, within, st.none() | st.integers(1, policy.max_installments))
    change = st.builds(
        lambda n, intent: Move(
            intent, f"ta bom, faço em {n}x entao" if n else "à vista então", installments=n
        ),
        st.none() | counts,
        st.sampled_from(["ask_installments", "nlu_fallback", "accept_agreement", "affirm"]),
    )
    accept = st.sampled_from(
        [
            Move("accept_agreement", "fechado"),
            Move("affirm", "sim"),
            Move("accept_agreement", "ok fechado manda o pix"),
        ]
    )
    single = st.one_of(
        st.just(Move("ask_amount", "quanto tenho q pagar")),
        any_offer,
        fair_offer,
        st.just(Move("negotiate_amount", "mto caro")),
        change,
        accept,
        st.just(Move("deny", "não")),
        st.just(Move("request_payment", "manda o pix")),
        st.just(Move("payment_problem", "o boleto venceu")),
        st.just(Move("inform_paid", "paguei")),
    )
    # Renegotiating after an agreement: a new figure (or installments), then "fechado".
    renegotiate = st.tuples(fair_offer | change, accept).map(list)
    return st.lists(single.map(lambda m: [m]) | renegotiate, min_size=1, max_size=8).map(
        lambda groups: [m for group in groups for m in group]
    )


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Policy, list[Move]]:
    policy = draw(policies())
    return policy, draw(moves(policy))


# ----------------------------------------------------------------------------- the harness


@dataclass
class SenderState:
    """What Rasa keeps for one sender: slots and the user turns of the session."""

    case_id: int
    conversation_id: int
    sender: str
    slots: dict[str, Any] = field(
        default_factory=lambda: {"offer_amount": None, "offer_installments": None}
    )
    events: list[dict[str, Any]] = field(default_factory=list)


async def start(policy: Policy) -> SenderState:
    phone = f"+5521988{next(_phones):06d}"
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=policy.base,
            floor_amount=policy.floor,
            max_discount_percent=policy.discount,
            max_installments=policy.max_installments,
            min_installment_amount=policy.min_installment,
        )
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(
            session, brand=brand, infringer=infringer, status=CaseStatus.NOTIFICADO
        )
        case.claimed_amount = policy.claimed
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        return SenderState(case.id, conversation.id, sender_id_for(conversation))


async def turn(convo: SenderState, move: Move) -> tuple[list[dict[str, Any]], bool]:
    """Run the action Rasa would run for this move; returns (responses, paused)."""
    latest = {
        "text": move.text,
        "intent": {"name": move.intent, "confidence": 0.9},
        "entities": move.entities(),
        "metadata": {"channel": "whatsapp", "message_id": uuid.uuid4().hex},
        "message_id": uuid.uuid4().hex,
    }
    convo.events.append({"event": "user", "text": move.text, "parse_data": latest})
    tracker = Tracker(
        sender_id=convo.sender,
        slots=dict(convo.slots),
        latest_message=latest,
        events=list(convo.events),
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )
    dispatcher = CollectingDispatcher()
    action = ACTIONS[ACTION_FOR_INTENT[move.intent]]
    events = await action.run(dispatcher, tracker, {})
    paused = False
    for event in events:
        if event["event"] == "slot":
            convo.slots[event["name"]] = event["value"]
        paused = paused or event["event"] == "pause"
    return dispatcher.messages, paused


async def hand_back(convo: SenderState) -> None:
    """The analyst returns the conversation to the bot (do_release's effect on both sides)."""
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, convo.conversation_id)
        assert conversation is not None and conversation.holder is not Holder.BOT
        conversation.holder = Holder.BOT
        conversation.handoff_reason = conversation.handoff_at = None
    convo.slots = {"offer_amount": None, "offer_installments": None}


def figure(text: str) -> Decimal:
    """'R$ 1.234,56' -> Decimal('1234.56')."""
    assert text.startswith("R$ "), text
    return Decimal(text[3:].replace(".", "").replace(",", "."))


# ----------------------------------------------------------------------------- invariants


@dataclass
class Story:
    policy: Policy
    offered: set[Decimal] = field(default_factory=set)  # figures the infringer has stated
    first_own_figure: Decimal | None = None


async def check_turn(
    story: Story, convo: SenderState, move: Move, said: list[dict[str, Any]], paused: bool
) -> None:
    policy = story.policy
    async with unit_of_work() as session:
        case = await load_case(session, convo.case_id)
        assert case is not None
        requests = list(
            await session.scalars(
                sa.select(PaymentRequest)
                .where(PaymentRequest.case_id == case.id)
                .order_by(PaymentRequest.id)
            )
        )
        timeline = await get_case_timeline(session, case_id=case.id)
    agreed = case.agreed_amount, case.agreed_installments
    names = [m.get("response") for m in said]

    # The agreement is always within policy; and so is what the slots hold for the next "sim".
    if case.agreed_amount is not None:
        assert case.agreed_installments is not None
        assert policy.allows(case.agreed_amount, case.agreed_installments), agreed
    if convo.slots.get("offer_amount") and not paused:
        pending = Decimal(convo.slots["offer_amount"]), int(convo.slots["offer_installments"])
        assert policy.allows(*pending), pending

    # Payment requests: one current at most, asking for the agreement; the others cancelled
    # and on the timeline.
    current = [r for r in requests if r.superseded_at is None]
    assert len(current) <= 1
    if current:
        assert (current[0].total_amount, current[0].installments_count) == agreed
    cancelled_ids = {
        e.data.get("payment_request_id") for e in timeline if (e.data or {}).get("cancelled")
    }
    for request in requests:
        if request.superseded_at is not None:
            assert request.id in cancelled_ids
            assert all(i.status is not InstallmentStatus.OPEN for i in request.installments)

    for message in said:
        name = message.get("response")
        stated = figure(message["amount"]) if "amount" in message else None
        if stated is not None and stated not in story.offered and story.first_own_figure is None:
            story.first_own_figure = stated
            assert stated == policy.case_amount, (name, stated, policy.case_amount)
        if name == "utter_payment_details":
            assert (figure(message["amount"]), int(message["installments"])) == agreed
            [request] = current
            assert message["payment_link"].endswith("/pagamento/" + request.public_token)
            first = next(i for i in request.installments if i.number == 1)
            assert figure(message["installment_amount"]) == first.amount
            assert Decimal(parse_tlv(message["pix"])["54"]) == first.amount
            assert sum(i.amount for i in request.installments) == request.total_amount
        elif name in PROPOSALS:
            assert stated is not None
            assert policy.allows(stated, int(message["installments"])), message
        elif name in OPENINGS:
            assert stated == policy.case_amount
            assert policy.installments_ok(stated, int(message["max_installments"]))
        elif name == "utter_installments_options":
            assert stated is not None and policy.amount_ok(stated)
            assert policy.installments_ok(stated, int(message["max_installments"]))

    if move.intent == "negotiate_amount" and move.amount is not None:
        offered, count = move.amount, move.installments or 1
        stated_figures = [figure(m["amount"]) for m in said if "amount" in m]
        if policy.amount_ok(offered):
            assert all(f >= offered for f in stated_figures), (offered, stated_figures)
        if policy.allows(offered, count):
            assert names == ["utter_propose_terms"], (move, names)
            assert (figure(said[0]["amount"]), int(said[0]["installments"])) == (offered, count)
        elif not policy.amount_ok(offered):
            assert paused and "utter_propose_terms" not in names, (move, names)


@settings(
    max_examples=200,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(conversations())
async def test_money_always_matches_the_agreement_and_the_policy(
    database_url: str, scenario: tuple[Policy, list[Move]]
) -> None:
    policy, script = scenario
    convo = await start(policy)
    story = Story(policy)
    for move in script:
        said, paused = await turn(convo, move)
        if move.amount is not None:
            story.offered.add(move.amount)
        await check_turn(story, convo, move, said, paused)
        if paused:
            await hand_back(convo)
