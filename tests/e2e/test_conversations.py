"""Conversation tests: every story of tests/stories/*.yml played against a real Rasa server
whose custom actions run in the real service against a real case in the database."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case, Listing
from api.cases.service import do_advance_status
from api.config import RasaSettings
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel, Conversation
from api.conversations.service import create_conversation, sender_id_for
from api.db import unit_of_work, utcnow
from api.engine.client import RasaGateway
from api.payments.service import get_current_payment_request
from api.timeline.service import Actor
from tests.e2e.stack import Stack
from tests.factories import make_brand, make_case, make_infringer, valid_cpf

pytestmark = pytest.mark.e2e
STORIES_DIR = Path(__file__).resolve().parents[1] / "stories"
_numbers = itertools.count(1)


def load_stories() -> list[dict[str, Any]]:
    stories: list[dict[str, Any]] = []
    for path in sorted(STORIES_DIR.glob("*.yml")):
        stories.extend(yaml.safe_load(path.read_text(encoding="utf-8"))["stories"])
    return stories


@dataclass(frozen=True)
class Scene:
    case_id: int
    conversation_id: int
    sender: str
    facts: dict[str, str]


async def set_scene(setup: str | None, channel: str = "whatsapp") -> Scene:
    """A brand, an infringer and a case, and the conversation on `channel` (whatsapp/email)."""
    n = next(_numbers)
    phone = f"+55119{87000000 + n:08d}"
    email = f"maria.souza{n}@example.com"
    cpf = valid_cpf(700 + n)
    async with unit_of_work() as session:
        brand = await make_brand(
            session,
            base_amount=Decimal("2500.00"),
            floor_amount=Decimal("1500.00"),
            max_installments=6,
            min_installment_amount=Decimal("250.00"),
        )
        infringer = await make_infringer(
            session, name="Maria Souza", document=cpf, phones=(phone,), emails=(email,)
        )
        case = await make_case(
            session,
            brand=brand,
            infringer=infringer,
            status=CaseStatus.NOTIFICADO,
            listings=(f"https://produto.mercadolivre.com.br/MLB-{n}",),
        )
        case.claimed_amount = Decimal("2500.00")
        case.notice_sent_at = utcnow() - dt.timedelta(days=2)
        case.response_deadline = (utcnow() + dt.timedelta(days=8)).date()
        if setup == "agreed":
            await do_advance_status(
                session,
                case=case,
                path=[
                    CaseStatus.EM_ATENDIMENTO,
                    CaseStatus.EM_NEGOCIACAO,
                    CaseStatus.ACORDO_PROPOSTO,
                ],
                actor=Actor.system(),
                reason="cenário de teste",
            )
            case.agreed_amount, case.agreed_installments = Decimal("2500.00"), 1
        by_email = channel == "email"
        address = email if by_email else phone
        if setup == "unknown_sender":
            address = f"desconhecido{n}@example.com" if by_email else f"+55489{91000000 + n:08d}"
        found = await do_identify_sender(
            session, kind=ContactKind.EMAIL if by_email else ContactKind.PHONE, raw=address
        )
        conversation = await create_conversation(
            session,
            contact=found.contact,
            channel=Channel.EMAIL if by_email else Channel.WHATSAPP,
            address=address,
            case=None if setup == "unknown_sender" else case,
        )
        facts = {
            "case_ref": case.reference,
            "deadline": case.response_deadline.strftime("%d/%m/%Y"),
            "cpf": f"{cpf[:3]}.{cpf[3:6]}.{cpf[6:9]}-{cpf[9:]}",
        }
        return Scene(case.id, conversation.id, sender_id_for(conversation), facts)


def expected_turns(story: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(text, intent, actions) per user step."""
    turns: list[tuple[str, str, list[str]]] = []
    for step in story["steps"]:
        if "user" in step:
            turns.append((step["user"].strip(), step["intent"], []))
        else:
            turns[-1][2].append(step["action"])
    return turns


async def check_facts(
    scene: Scene, expect: dict[str, Any], replies: str, paused: bool, last_turn: str = ""
) -> list[str]:
    problems: list[str] = []
    for needle in expect.get("reply_contains", []):
        needle = needle.format(**scene.facts)
        if needle.lower() not in replies.lower():
            problems.append(f"replies lack {needle!r}")
    # What the bot said to the last message alone (e.g. the payment details after a change).
    for needle in expect.get("last_reply_contains", []):
        if needle.format(**scene.facts).lower() not in last_turn.lower():
            problems.append(f"last reply lacks {needle!r}")
    for needle in expect.get("last_reply_lacks", []):
        if needle.format(**scene.facts).lower() in last_turn.lower():
            problems.append(f"last reply has {needle!r}")
    if "paused" in expect and expect["paused"] != paused:
        problems.append(f"paused={paused}, expected {expect['paused']}")
    async with unit_of_work() as session:
        case = await session.get(Case, scene.case_id)
        conversation = await session.get(Conversation, scene.conversation_id)
        assert case is not None and conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        listings = set(
            await session.scalars(sa.select(Listing.status).where(Listing.case_id == case.id))
        )
        payment = await get_current_payment_request(session, case_id=case.id)
    checks = {
        "case_status": str(case.status),
        "holder": str(conversation.holder),
        "agreed_amount": None if case.agreed_amount is None else str(case.agreed_amount),
        "agreed_installments": case.agreed_installments,
        "current_payment": None
        if payment is None
        else f"{payment.total_amount} em {payment.installments_count}x",
        "opted_out": contact is not None and contact.opted_out_at is not None,
        "linked": conversation.case_id == case.id,
        "listings": ",".join(sorted(str(s) for s in listings)),
    }
    for key, actual in checks.items():
        if key in expect and expect[key] != actual:
            problems.append(f"{key}={actual!r}, expected {expect[key]!r}")
    return problems


STORIES = load_stories()


@pytest.mark.parametrize("story", STORIES, ids=[s["story"] for s in STORIES])
async def test_story(stack: Stack, story: dict[str, Any]) -> None:
    metadata = story.get("metadata") or {}
    channel = metadata.get("channel", "whatsapp")
    scene = await set_scene(metadata.get("setup"), channel)
    gateway = RasaGateway(RasaSettings(url=stack.rasa.url, gateway_secret=stack.rasa.secret))
    problems: list[str] = []
    replies: list[str] = []
    last_turn: list[str] = []
    paused = False
    try:
        for text, intent, actions in expected_turns(story):
            turn = await gateway.send_turn(
                sender=scene.sender,
                text=text.format(**scene.facts),
                message_id=f"story-{scene.conversation_id}-{len(replies)}-{next(_numbers)}",
                channel=channel,
            )
            got_intent = turn.nlu.intent if turn.nlu else None
            if got_intent != intent:
                problems.append(f"{text!r}: intent {got_intent}, expected {intent}")
            if turn.actions != actions:
                problems.append(f"{text!r}: actions {turn.actions}, expected {actions}")
            last_turn = [m.text for m in turn.messages]
            replies.extend(last_turn)
            paused = turn.paused
    finally:
        await gateway.aclose()
    problems += await check_facts(
        scene,
        metadata.get("expect") or {},
        "\n".join(replies),
        paused,
        last_turn="\n".join(last_turn),
    )
    _record(story["story"], problems)
    assert problems == [], "\n".join(problems)


def _record(name: str, problems: list[str]) -> None:
    """`make eval` sets TRATATIVA_RESULTS_DIR to keep a report of every story."""
    directory = os.environ.get("TRATATIVA_RESULTS_DIR")
    if not directory:
        return
    path = Path(directory) / "conversation_tests.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps({"story": name, "passed": not problems, "problems": problems}) + "\n")
