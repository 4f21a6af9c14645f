"""Event-driven alerts through the real inbound pipeline and the durable consumer (inline,
after commit): who gets them, one per occurrence, no storms, replays raise nothing, and the
conditions that clear them."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst, Role
from api.cases.models import Case
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender, do_lift_opt_out
from api.conversations.delivery import do_update_delivery_status
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation, DeliveryStatus
from api.conversations.outbound import Outbound, do_queue_outbound
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.events import about, emit
from api.events import kinds as ev
from api.events.consumers import drain
from api.events.models import StoredEvent
from api.events.service import to_record
from api.handoff.service import do_claim, do_request_handoff, do_send_analyst_message
from api.operations.alerts import do_acknowledge
from api.operations.consumer import NOTICES_CONSUMER, handle_event
from api.operations.models import Alert
from api.operations.ownership import do_assign_case
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer
from tests.helpers.events import capture_events

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
# Its own range: the session database is shared, and the browser tests count from 40,000,000.
_seq = iter(range(10_000_000, 19_999_999, 104729))


async def owned_whatsapp_case(*, owner: bool = True) -> tuple[int, int, str, int | None]:
    """(conversation id, case id, phone, owner id) of an open WhatsApp conversation."""
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        owner_id = (await make_analyst(session)).id if owner else None
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer)
        case.assignee_id = owner_id
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=1)  # the window is open
        return conversation.id, case.id, phone, owner_id


def inbound(phone: str, text: str = "oi") -> InboundMessage:
    return InboundMessage(
        channel=Channel.WHATSAPP,
        sender=phone,
        text=text,
        external_id=f"SM{next(_seq)}",
        received_at=utcnow(),
        raw={},
    )


async def receive(phone: str, text: str = "oi") -> None:
    async with unit_of_work() as session:
        await do_receive_message(session, inbound(phone, text))


async def alerts_of(conversation_id: int, kind: str | None = None) -> list[Alert]:
    async with unit_of_work() as session:
        query = sa.select(Alert).where(Alert.conversation_id == conversation_id)
        if kind is not None:
            query = query.where(Alert.kind == kind)
        return list(await session.scalars(query.order_by(Alert.id)))


async def test_an_inbound_message_raises_one_alert_for_the_owner_on_the_timeline() -> None:
    conversation_id, case_id, phone, owner_id = await owned_whatsapp_case()
    with capture_events() as events:
        await receive(phone, "bom dia, recebi a notificação")
    [alert] = await alerts_of(conversation_id)
    assert (alert.kind, alert.recipient_id, alert.case_id, alert.state) == (
        "infringer_replied",
        owner_id,
        case_id,
        "open",
    )
    assert alert.to_supervisors is False
    raised = [e for e in events if isinstance(e, ev.AlertRaised)]
    assert [(e.alert, e.detail["alert_id"]) for e in raised] == [("infringer_replied", alert.id)]
    async with unit_of_work() as session:
        summaries = list(
            await session.scalars(
                sa.select(TimelineEntry.summary).where(
                    TimelineEntry.case_id == case_id, TimelineEntry.kind == EntryKind.ALERT
                )
            )
        )
    assert summaries == [f"Alerta: {alert.title}"]


async def test_an_unowned_conversation_alerts_the_supervisors_only_while_it_waits() -> None:
    conversation_id, _, phone, _ = await owned_whatsapp_case(owner=False)
    await receive(phone)
    assert await alerts_of(conversation_id) == []  # the bot holds it: the bot answers
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        await do_request_handoff(
            session, conversation=conversation, reason="pediu uma pessoa", actor=Actor.bot()
        )
    await receive(phone, "cadê o atendente?")
    [alert] = await alerts_of(conversation_id)
    assert alert.recipient_id is None and alert.to_supervisors is True


async def test_a_burst_of_fifty_messages_is_one_alert_until_an_analyst_answers() -> None:
    conversation_id, _, phone, owner_id = await owned_whatsapp_case()
    for n in range(50):
        await receive(phone, f"mensagem {n}")
    [alert] = await alerts_of(conversation_id)
    assert alert.repeats == 49
    async with unit_of_work() as session:
        analyst = await session.get(Analyst, owner_id)
        assert analyst is not None
        await do_claim(session, conversation_id=conversation_id, analyst=analyst)
    async with unit_of_work() as session:
        analyst = await session.get(Analyst, owner_id)
        assert analyst is not None
        await do_send_analyst_message(
            session, conversation_id=conversation_id, analyst=analyst, text="Olá, vamos conversar."
        )
    [resolved] = await alerts_of(conversation_id)
    assert resolved.state == "resolved"
    await receive(phone, "e agora?")
    first, second = await alerts_of(conversation_id)
    assert (first.state, second.state) == ("resolved", "open")
    assert second.recipient_id == owner_id  # the holder


async def test_replaying_the_same_events_raises_nothing_new() -> None:
    conversation_id, case_id, phone, _ = await owned_whatsapp_case()
    await receive(phone, "oi")
    await receive(phone, "alguém aí?")
    async with unit_of_work() as session:
        rows = list(
            await session.scalars(
                sa.select(StoredEvent)
                .where(StoredEvent.conversation_id == conversation_id)
                .order_by(StoredEvent.id)
            )
        )
        entries_before = await session.scalar(
            sa.select(sa.func.count()).where(TimelineEntry.case_id == case_id)
        )
    before = [(a.id, a.state, a.repeats) for a in await alerts_of(conversation_id)]
    assert len(before) == 1
    with capture_events() as events:
        for _ in range(2):
            async with unit_of_work() as session:
                for row in rows:
                    await handle_event(session, to_record(row))
    after = await alerts_of(conversation_id)
    assert [a.id for a in after] == [before[0][0]]
    assert not [e for e in events if isinstance(e, ev.AlertRaised)]
    async with unit_of_work() as session:
        entries_after = await session.scalar(
            sa.select(sa.func.count()).where(TimelineEntry.case_id == case_id)
        )
    assert entries_after == entries_before


async def test_a_failed_delivery_alerts_once_per_message() -> None:
    conversation_id, _, _, owner_id = await owned_whatsapp_case()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        message = await do_queue_outbound(
            session, conversation=conversation, outbound=Outbound(text="Olá"), actor=Actor.bot()
        )
        message.provider_id = sid = f"SM{next(_seq)}"
    async with unit_of_work() as session:
        # An event about a conversation that is gone (never stored, or erased) comes first:
        # it is passed over, not retried for ever in front of the real one.
        emit(
            session,
            ev.MessageFailed(
                conversation_id=2_000_000_000,
                channel="whatsapp",
                actor_kind=ev.EventActorKind.SYSTEM,
                message_id=2_000_000_000,
                status="failed",
            ),
        )
    for status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
        async with unit_of_work() as session:
            await do_update_delivery_status(
                session, channel=Channel.WHATSAPP, provider_id=sid, status=status, error="63016"
            )
    await drain(NOTICES_CONSUMER)
    await drain(NOTICES_CONSUMER)  # a second pass finds nothing new
    [alert] = await alerts_of(conversation_id, "delivery_failed")
    assert alert.recipient_id == owner_id
    assert "63016" in alert.body


async def test_opt_out_and_data_request_go_to_the_owner_and_the_supervisors() -> None:
    conversation_id, case_id, phone, owner_id = await owned_whatsapp_case()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        message = await do_receive_message(session, inbound(phone, "quero meus dados, LGPD"))
        emit(
            session,
            ev.BotTurnRead(
                **about(conversation=conversation, actor=ev.EventActorKind.BOT),
                message_id=message.message.id,
                intent="data_request",
                confidence=0.97,
            ),
        )
        emit(
            session,
            ev.ContactOptedOut(
                **about(conversation=conversation, actor=Actor.infringer()),
                contact_id=conversation.contact_point_id,
                reason="palavra-chave: PARE",
            ),
        )
    await drain(NOTICES_CONSUMER)
    kinds = {a.kind: a for a in await alerts_of(conversation_id)}
    assert set(kinds) == {"infringer_replied", "data_request", "opt_out"}
    for code in ("data_request", "opt_out"):
        assert kinds[code].recipient_id == owner_id and kinds[code].to_supervisors is True
        assert kinds[code].case_id == case_id


async def test_lifting_an_opt_out_emits_an_event_and_resolves_its_alert() -> None:
    conversation_id, _case_id, _phone, _owner_id = await owned_whatsapp_case()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        assert contact is not None
        contact.opted_out_at = utcnow()
        contact.opt_out_reason = "palavra-chave: PARE"
        emit(
            session,
            ev.ContactOptedOut(
                **about(conversation=conversation, actor=Actor.infringer()),
                contact_id=contact.id,
                reason="palavra-chave: PARE",
            ),
        )
        contact_id = contact.id
    await drain(NOTICES_CONSUMER)
    [alert] = await alerts_of(conversation_id, "opt_out")
    assert alert.state != "resolved"
    async with unit_of_work() as session:
        supervisor = await make_analyst(session, role=Role.SUPERVISOR)
    with capture_events() as events:
        async with unit_of_work() as session:
            await do_lift_opt_out(
                session,
                contact_id=contact_id,
                actor=Actor(ActorKind.ANALYST, analyst_id=supervisor.id, name=supervisor.name),
                reason="pediu para voltar a ser contatado",
            )
    [lifted] = [e for e in events if isinstance(e, ev.ContactOptOutLifted)]
    assert lifted.contact_id == contact_id and lifted.conversation_id == conversation_id
    assert lifted.actor_id == supervisor.id
    await drain(NOTICES_CONSUMER)
    [alert] = await alerts_of(conversation_id, "opt_out")
    assert alert.state == "resolved"


async def test_a_supervisor_reassigns_and_open_alerts_follow() -> None:
    conversation_id, case_id, phone, owner_id = await owned_whatsapp_case()
    await receive(phone)
    async with unit_of_work() as session:
        other = await make_analyst(session)
        supervisor = await make_analyst(session, role=Role.SUPERVISOR)
        other_id = other.id
    with capture_events() as events:
        async with unit_of_work() as session:
            supervisor_row = await session.get(Analyst, supervisor.id)
            assert supervisor_row is not None
            await do_assign_case(session, case_id=case_id, analyst_id=other_id, by=supervisor_row)
    assigned = [e for e in events if isinstance(e, ev.CaseAssigned)]
    assert [(e.analyst_id, e.previous_analyst_id, e.how) for e in assigned] == [
        (other_id, owner_id, "manual")
    ]
    [alert] = await alerts_of(conversation_id)
    assert alert.recipient_id == other_id
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None and case.assignee_id == other_id
        entry = await session.scalar(
            sa.select(TimelineEntry.summary)
            .where(TimelineEntry.case_id == case_id)
            .order_by(TimelineEntry.id.desc())
            .limit(1)
        )
    assert entry is not None and entry.startswith("Responsável pelo caso:")


async def test_once_acknowledged_the_next_message_is_news_again() -> None:
    conversation_id, _, phone, owner_id = await owned_whatsapp_case()
    await receive(phone, "oi")
    await receive(phone, "oi de novo")
    [alert] = await alerts_of(conversation_id)
    async with unit_of_work() as session:
        owner = await session.get(Analyst, owner_id)
        assert owner is not None
        await do_acknowledge(session, alert_id=alert.id, analyst=owner)
    await receive(phone, "e então?")
    await receive(phone, "??")
    first, second = await alerts_of(conversation_id)
    assert (first.state, second.state, second.repeats) == ("acknowledged", "open", 1)
