"""Each event kind is emitted by the service that makes the change, in its transaction: one
capture test per kind, and a real rollback emits (and stores) nothing."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst
from api.app import create_app
from api.cases.lifecycle import CaseStatus, IllegalTransition
from api.cases.models import Case
from api.cases.service import do_change_status
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.delivery import do_update_delivery_status
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation, DeliveryStatus, Message
from api.conversations.outbound import Outbound, do_queue_outbound
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.engine.client import BotMessage, EngineTurn, NluReading
from api.engine.turns import process_conversation
from api.events import kinds as ev
from api.events.models import StoredEvent
from api.events.service import get_events
from api.handoff.service import (
    analyst_actor,
    do_add_note,
    do_claim,
    do_release,
    do_request_handoff,
    do_resolve,
)
from api.outbox.models import OutboxItem
from api.outbox.senders import SendResult
from api.outbox.service import do_mark_failed, do_mark_sent
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer
from tests.helpers.events import capture_events, kinds, only

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(30_000_000, 99_999_999, 104723))


async def whatsapp_case(status: CaseStatus = CaseStatus.EM_ATENDIMENTO) -> tuple[int, int, str]:
    """(conversation id, case id, phone) of a case with an open WhatsApp conversation."""
    phone = f"+55219{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer, status=status)
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=1)
        return conversation.id, case.id, phone


async def an_analyst() -> Analyst:
    async with unit_of_work() as session:
        return await make_analyst(session)


def inbound(phone: str, text: str = "oi") -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        sender=phone,
        text=text,
        external_id=f"SM{next(_seq)}",
        received_at=utcnow(),
        raw={},
    )


async def queued_message(conversation_id: int) -> int:
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        message = await do_queue_outbound(
            session, conversation=conversation, outbound=Outbound(text="Olá"), actor=Actor.bot()
        )
        return message.id


async def test_a_rolled_back_transaction_emits_and_stores_nothing() -> None:
    conversation_id, _, _ = await whatsapp_case()

    class Boom(Exception):
        pass

    with capture_events() as events, pytest.raises(Boom):
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            assert await do_request_handoff(
                session, conversation=conversation, reason="teste", actor=Actor.bot()
            )
            # Read in the same transaction, the event row is there (written before the read),
            # and the rollback takes it back.
            stored = await session.scalar(
                sa.select(sa.func.count())
                .select_from(StoredEvent)
                .where(StoredEvent.conversation_id == conversation_id)
            )
            assert stored == 1
            raise Boom
    assert events == []
    async with unit_of_work() as session:
        assert await get_events(session, conversation_id=conversation_id) == []


async def test_a_rolled_back_savepoint_drops_only_its_own_events() -> None:
    """Events are written as the transaction commits, in emission order; those emitted inside
    a savepoint that rolled back are neither written nor seen, the others are."""
    conversation_id, _, _ = await whatsapp_case()
    ana = await an_analyst()

    class Boom(Exception):
        pass

    with capture_events() as events:
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            assert await do_request_handoff(
                session, conversation=conversation, reason="antes", actor=Actor.bot()
            )
            with pytest.raises(Boom):
                async with session.begin_nested():
                    await do_claim(session, conversation_id=conversation_id, analyst=ana)
                    raise Boom
            async with session.begin_nested():
                await do_claim(session, conversation_id=conversation_id, analyst=ana)
            await do_release(session, conversation_id=conversation_id, analyst=ana)
    assert kinds(events) == ["handoff.requested", "handoff.claimed", "handoff.released"]
    async with unit_of_work() as session:
        stored = await get_events(session, conversation_id=conversation_id)
    assert [record.event for record in stored] == events


async def test_message_received() -> None:
    conversation_id, case_id, phone = await whatsapp_case()
    message = inbound(phone, "bom dia")
    with capture_events() as events:
        async with unit_of_work() as session:
            received = await do_receive_message(session, message)
    assert events == [
        ev.MessageReceived(
            case_id=case_id,
            conversation_id=conversation_id,
            channel="whatsapp",
            actor_kind=ev.EventActorKind.INFRINGER,
            occurred_at=message.received_at,
            message_id=received.message.id,
            attachments=0,
            answerable=True,
        )
    ]
    # A replay of the same provider id stores nothing new and emits nothing.
    with capture_events() as events:
        async with unit_of_work() as session:
            await do_receive_message(session, message)
    assert events == []


async def test_message_sent() -> None:
    conversation_id, case_id, _ = await whatsapp_case()
    with capture_events() as events:
        message_id = await queued_message(conversation_id)
    assert kinds(events) == ["message.sent"]
    sent = only(events, ev.MessageSent)
    assert sent.model_dump(exclude={"occurred_at"}) == {
        "case_id": case_id,
        "conversation_id": conversation_id,
        "channel": "whatsapp",
        "actor_kind": ev.EventActorKind.BOT,
        "actor_id": None,
        "message_id": message_id,
        "author_kind": "bot",
        "template": None,
    }


async def test_message_delivered_from_the_outbox_and_the_provider() -> None:
    conversation_id, _, _ = await whatsapp_case()
    message_id = await queued_message(conversation_id)
    sid = f"SM{next(_seq)}"
    with capture_events() as accepted:
        async with unit_of_work() as session:
            item = await session.scalar(
                sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
            )
            assert item is not None
            await do_mark_sent(session, item_id=item.id, result=SendResult(provider_id=sid))
    with capture_events() as events:
        async with unit_of_work() as session:
            await do_update_delivery_status(
                session, channel=Channel.WHATSAPP, provider_id=sid, status=DeliveryStatus.DELIVERED
            )
            # An older report arriving late changes nothing and emits nothing.
            await do_update_delivery_status(
                session, channel=Channel.WHATSAPP, provider_id=sid, status=DeliveryStatus.SENT
            )
    assert [(e.kind, getattr(e, "status", None)) for e in accepted + events] == [
        ("message.delivered", "sent"),
        ("message.delivered", "delivered"),
    ]
    assert {getattr(e, "message_id", None) for e in accepted + events} == {message_id}


async def test_message_failed_by_the_provider_and_by_exhausted_retries() -> None:
    conversation_id, _, _ = await whatsapp_case()
    first, second = await queued_message(conversation_id), await queued_message(conversation_id)
    async with unit_of_work() as session:
        message = await session.get(Message, first)
        assert message is not None
        message.provider_id = sid = f"SM{next(_seq)}"
    with capture_events() as events:
        async with unit_of_work() as session:
            await do_update_delivery_status(
                session,
                channel=Channel.WHATSAPP,
                provider_id=sid,
                status=DeliveryStatus.UNDELIVERED,
                error="63016",
            )
        async with unit_of_work() as session:
            item = await session.scalar(
                sa.select(OutboxItem).where(OutboxItem.message_id == second)
            )
            assert item is not None
            assert not await do_mark_failed(
                session, item_id=item.id, error="número inválido", retryable=False
            )
    assert [
        (e.kind, e.message_id, e.status) for e in events if isinstance(e, ev.MessageFailed)
    ] == [
        ("message.failed", first, "undelivered"),
        ("message.failed", second, "failed"),
    ]
    assert kinds(events) == ["message.failed", "message.failed"]


class ReadingGateway:
    """A stand-in for Rasa: reads every turn as `greet` and answers one message."""

    async def send_turn(self, **_: Any) -> EngineTurn:
        return EngineTurn(
            messages=[BotMessage(text="Olá!")],
            nlu=NluReading(intent="greet", confidence=0.93),
            paused=False,
        )

    async def pause(self, _sender: str) -> None:
        return None


async def test_bot_turn_read_and_the_bot_reply_sent() -> None:
    conversation_id, case_id, phone = await whatsapp_case()
    async with unit_of_work() as session:
        received = await do_receive_message(session, inbound(phone, "olá"))
    with capture_events() as events:
        await process_conversation(conversation_id, gateway=ReadingGateway())  # type: ignore[arg-type]
    assert kinds(events) == ["bot.turn_read", "message.sent"]
    read = only(events, ev.BotTurnRead)
    assert (read.message_id, read.intent, read.confidence) == (received.message.id, "greet", 0.93)
    assert (read.case_id, read.actor_kind) == (case_id, ev.EventActorKind.BOT)


async def test_opt_out_by_keyword() -> None:
    conversation_id, _, phone = await whatsapp_case()
    async with unit_of_work() as session:
        await do_receive_message(session, inbound(phone, "SAIR"))
    with capture_events() as events:
        await process_conversation(conversation_id, gateway=None)
    assert kinds(events) == ["contact.opted_out", "message.sent", "handoff.requested"]
    opted = only(events, ev.ContactOptedOut)
    assert opted.actor_kind is ev.EventActorKind.INFRINGER
    assert opted.conversation_id == conversation_id


async def test_handoff_requested_claimed_released_resolved() -> None:
    conversation_id, case_id, _ = await whatsapp_case()
    ana = await an_analyst()
    with capture_events() as events:
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await do_request_handoff(
                session, conversation=conversation, reason="pediu humano", actor=Actor.bot()
            )
        async with unit_of_work() as session:
            await do_claim(session, conversation_id=conversation_id, analyst=ana)
        async with unit_of_work() as session:
            await do_release(session, conversation_id=conversation_id, analyst=ana, note="ok")
        async with unit_of_work() as session:
            await do_resolve(session, conversation_id=conversation_id, analyst=ana)
    assert kinds(events) == [
        "handoff.requested",
        "handoff.claimed",
        "handoff.released",
        "handoff.resolved",
    ]
    requested, claimed, released, resolved = events
    assert isinstance(requested, ev.HandoffRequested) and requested.reason == "pediu humano"
    assert requested.actor_kind is ev.EventActorKind.BOT
    assert isinstance(claimed, ev.HandoffClaimed)
    assert (claimed.analyst_id, claimed.actor_id, claimed.previous_analyst_id) == (
        ana.id,
        ana.id,
        None,
    )
    assert isinstance(released, ev.HandoffReleased) and released.note == "ok"
    assert isinstance(resolved, ev.HandoffResolved)
    assert {e.case_id for e in events} == {case_id}
    assert {e.channel for e in events} == {"whatsapp"}


async def test_a_refused_claim_emits_nothing() -> None:
    conversation_id, _, _ = await whatsapp_case()
    ana, bia = await an_analyst(), await an_analyst()
    async with unit_of_work() as session:
        await do_claim(session, conversation_id=conversation_id, analyst=ana)
    with capture_events() as events, pytest.raises(Exception, match="outro analista"):
        async with unit_of_work() as session:
            await do_claim(session, conversation_id=conversation_id, analyst=bia)
    assert events == []


async def test_case_status_changed_agreement_accepted_payment_confirmed() -> None:
    _, case_id, _ = await whatsapp_case(CaseStatus.EM_NEGOCIACAO)
    ana = await an_analyst()
    with capture_events() as events:
        async with unit_of_work() as session:
            case = await session.get(Case, case_id)
            assert case is not None
            await do_change_status(
                session, case=case, target=CaseStatus.ACORDO_PROPOSTO, actor=Actor.bot()
            )
            case.agreed_amount, case.agreed_installments = Decimal("1500.00"), 3
        async with unit_of_work() as session:
            case = await session.get(Case, case_id)
            assert case is not None
            for target in (
                CaseStatus.ACORDO_ASSINADO,
                CaseStatus.AGUARDANDO_PAGAMENTO,
                CaseStatus.PAGO,
            ):
                await do_change_status(session, case=case, target=target, actor=analyst_actor(ana))
    assert kinds(events) == [
        "case.status_changed",
        "case.status_changed",
        "agreement.accepted",
        "case.status_changed",
        "case.status_changed",
        "payment.confirmed",
    ]
    moves = [(e.from_status, e.to_status) for e in events if isinstance(e, ev.CaseStatusChanged)]
    assert moves == [
        ("EM_NEGOCIACAO", "ACORDO_PROPOSTO"),
        ("ACORDO_PROPOSTO", "ACORDO_ASSINADO"),
        ("ACORDO_ASSINADO", "AGUARDANDO_PAGAMENTO"),
        ("AGUARDANDO_PAGAMENTO", "PAGO"),
    ]
    accepted = only(events, ev.AgreementAccepted)
    assert (accepted.amount, accepted.installments) == (Decimal("1500.00"), 3)
    assert (accepted.actor_kind, accepted.actor_id) == (ev.EventActorKind.ANALYST, ana.id)
    assert only(events, ev.PaymentConfirmed).amount == Decimal("1500.00")
    assert {e.case_id for e in events} == {case_id}


async def test_an_illegal_status_move_emits_nothing() -> None:
    _, case_id, _ = await whatsapp_case()
    with capture_events() as events, pytest.raises(IllegalTransition):
        async with unit_of_work() as session:
            case = await session.get(Case, case_id)
            assert case is not None
            await do_change_status(session, case=case, target=CaseStatus.PAGO, actor=Actor.bot())
    assert events == []


async def test_payment_issued_and_cancelled_when_replaced() -> None:
    _, case_id, _ = await whatsapp_case(CaseStatus.EM_NEGOCIACAO)
    with capture_events() as events:
        for amount, installments in ((Decimal("1500.00"), 3), (Decimal("1400.00"), 2)):
            async with unit_of_work() as session:
                case = await session.get(Case, case_id)
                assert case is not None
                await do_issue_payment_request(
                    session,
                    case=case,
                    brand=case.brand,
                    amount=amount,
                    installments=installments,
                    provider=get_payment_provider(),
                    actor=Actor.bot(),
                )
    assert kinds(events) == ["payment.issued", "payment.cancelled", "payment.issued"]
    first, cancelled, second = events
    assert isinstance(first, ev.PaymentIssued) and isinstance(second, ev.PaymentIssued)
    assert isinstance(cancelled, ev.PaymentCancelled)
    assert cancelled.payment_request_id == first.payment_request_id == second.replaces
    assert (second.amount, second.installments) == (Decimal("1400.00"), 2)


async def test_note_added() -> None:
    conversation_id, case_id, _ = await whatsapp_case()
    ana = await an_analyst()
    with capture_events() as events:
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            await do_add_note(session, analyst=ana, text="ligar amanhã", conversation=conversation)
    note = only(events, ev.NoteAdded)
    assert (note.case_id, note.conversation_id, note.actor_id) == (case_id, conversation_id, ana.id)
    assert kinds(events) == ["note.added"]


@pytest.fixture
async def actions_client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_agreement_proposed_by_the_bot(actions_client: httpx.AsyncClient) -> None:
    from tests.integration.test_bot_actions import run, setup_case, slots

    case_id, conversation_id, sender = await setup_case()
    proposal = await run(
        actions_client,
        "action_counteroffer",
        sender,
        text="consigo 1500 em 3x",
        intent="negotiate_amount",
        entities=[
            {"entity": "amount", "value": "1500.00"},
            {"entity": "installments", "value": "3"},
        ],
    )
    with capture_events() as events:
        await run(
            actions_client,
            "action_affirm",
            sender,
            text="sim",
            intent="affirm",
            slots=slots(proposal),
        )
    proposed = only(events, ev.AgreementProposed)
    assert (proposed.amount, proposed.installments) == (Decimal("1500.00"), 3)
    assert (proposed.case_id, proposed.conversation_id) == (case_id, conversation_id)
    assert proposed.actor_kind is ev.EventActorKind.BOT
    assert "payment.issued" in kinds(events)


def test_every_kind_has_a_schema_and_round_trips() -> None:
    now = utcnow()
    for kind, model in ev.KINDS.items():
        schema = model.model_json_schema()
        assert {"case_id", "conversation_id", "channel", "actor_kind", "occurred_at"} <= set(
            schema["properties"]
        ), kind
    alert = ev.AlertRaised(
        case_id=1, actor_kind=ev.EventActorKind.RULE, occurred_at=now, alert="sla", detail={"h": 2}
    )
    assert ev.AlertRaised.model_validate({**alert.payload(), **alert.model_dump()}) == alert
    with pytest.raises(ValueError):
        ev.RuleFired(actor_kind=ev.EventActorKind.RULE, rule="r", effect="e", unknown=1)  # type: ignore[call-arg]


async def test_follow_up_set_and_cleared() -> None:
    from api.followups.service import do_set_follow_up

    conversation_id, case_id, _ = await whatsapp_case()
    ana = await an_analyst()
    when = utcnow() + dt.timedelta(days=3)
    with capture_events() as events:
        for moment in (when, None):
            async with unit_of_work() as session:
                conversation = await session.get(Conversation, conversation_id)
                assert conversation is not None
                await do_set_follow_up(
                    session, conversation=conversation, when=moment, actor=analyst_actor(ana)
                )
    assert kinds(events) == ["follow_up.set", "follow_up.set"]
    assert [e.follow_up_at for e in events if isinstance(e, ev.FollowUpSet)] == [when, None]
    assert {(e.case_id, e.conversation_id, e.actor_id) for e in events} == {
        (case_id, conversation_id, ana.id)
    }
