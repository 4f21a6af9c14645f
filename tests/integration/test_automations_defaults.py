"""The shipped default rules, each on a frozen clock (`do_run_due_rules(now=…)` and events fed
to the automations consumer's handler), over the real database, templates, composers, outbox,
payments and business calendar (weekends and Brazilian holidays)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import api.channels  # noqa: F401  (registers every channel's composer)
from api.automations.consumer import handle_event
from api.automations.due import do_run_due_rules
from api.automations.models import AutomationExecution, AutomationRule, ScheduledAction
from api.brands.models import Brand
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import do_change_status
from api.contacts.models import ContactPoint
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import (
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.conversations.outbound import OutboundMessage, do_queue_message
from api.conversations.service import create_conversation
from api.events.service import get_events
from api.handoff.service import analyst_actor
from api.operations.models import Alert
from api.outbox.models import OutboxItem
from api.payments.models import PaymentRequest
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = pytest.mark.integration
SP = ZoneInfo("America/Sao_Paulo")


def at(*args: int) -> dt.datetime:
    """A São Paulo wall-clock moment."""
    return dt.datetime(*args, tzinfo=SP)


async def park_others(session: AsyncSession) -> None:
    """The test database is shared by the whole session and other tests commit: close every
    case that exists and drop pending scheduled actions inside this test's transaction (rolled
    back at its end), so a sweep's count is this test's own subjects only."""
    await session.execute(sa.update(Case).values(status=CaseStatus.ENCERRADO))
    await session.execute(sa.delete(ScheduledAction))


async def only_rules(session: AsyncSession, *builtin_keys: str) -> None:
    """Leave only these default rules enabled (inside the test's transaction)."""
    await park_others(session)
    chosen = sa.and_(  # a rule of the suite's own has no builtin_key: NULL IN (…) is NULL
        AutomationRule.builtin_key.is_not(None),
        AutomationRule.builtin_key.in_(list(builtin_keys)),
    )
    await session.execute(sa.update(AutomationRule).values(enabled=chosen))


async def conversation_for(
    session: AsyncSession, case: Case, channel: Channel, address: str
) -> Conversation:
    contact = await session.scalar(
        sa.select(ContactPoint).where(ContactPoint.infringer_id == case.infringer_id)
    )
    assert contact is not None
    return await create_conversation(
        session, contact=contact, channel=channel, address=address, case=case
    )


async def email_case(
    session: AsyncSession, status: CaseStatus = CaseStatus.EM_ATENDIMENTO
) -> tuple[Case, Conversation]:
    address = f"seller-{uuid.uuid4().hex[:10]}@example.com"
    infringer = await make_infringer(session, emails=(address,))
    case = await make_case(session, infringer=infringer, status=status)
    conversation = await conversation_for(session, case, Channel.EMAIL, address)
    return case, conversation


async def sent_email(
    session: AsyncSession, conversation: Conversation, when: dt.datetime, text: str
) -> Message:
    """An e-mail of ours that left at `when` (the outbox worker marked it sent)."""
    queued = await do_queue_message(
        session,
        conversation=conversation,
        message=OutboundMessage(author=AuthorKind.SYSTEM, texts=(text,)),
        actor=Actor.system(),
    )
    message = queued[0]
    message.created_at = when
    message.delivery_status = DeliveryStatus.SENT
    conversation.last_outbound_at = when
    await session.flush()
    return message


async def outbound_texts(session: AsyncSession, conversation_id: int) -> list[str]:
    rows = await session.scalars(
        sa.select(Message.text)
        .where(Message.conversation_id == conversation_id, Message.direction == Direction.OUTBOUND)
        .order_by(Message.id)
    )
    return list(rows)


async def timeline(session: AsyncSession, case_id: int) -> list[TimelineEntry]:
    rows = await session.scalars(
        sa.select(TimelineEntry).where(TimelineEntry.case_id == case_id).order_by(TimelineEntry.id)
    )
    return list(rows)


async def alerts(session: AsyncSession, case_id: int) -> list[Alert]:
    rows = await session.scalars(
        sa.select(Alert).where(Alert.case_id == case_id).order_by(Alert.id)
    )
    return list(rows)


async def ledger(session: AsyncSession, case_id: int) -> list[AutomationExecution]:
    rows = await session.scalars(
        sa.select(AutomationExecution)
        .where(AutomationExecution.case_id == case_id)
        .order_by(AutomationExecution.id)
    )
    return list(rows)


async def feed_events(session: AsyncSession, case_id: int, after_id: int = 0) -> int:
    """Hand the case's events (and those the rules cause) to the automations consumer's
    handler until nothing new appears; the id of the last event seen."""
    while True:
        records = await get_events(session, case_id=case_id, after_id=after_id)
        if not records:
            return after_id
        for record in records:
            await handle_event(session, record)
            after_id = record.id
        await session.flush()


async def last_event_id(session: AsyncSession) -> int:
    from api.events.models import StoredEvent

    return int(await session.scalar(sa.select(sa.func.coalesce(sa.func.max(StoredEvent.id), 0))))


# Our last e-mail unanswered for 3 business days ----------------------------------------------


async def test_unanswered_email_gets_one_reminder_per_silence_counting_business_days(
    session: AsyncSession,
) -> None:
    await only_rules(session, "email_sem_resposta")
    case, conversation = await email_case(session)
    # Tuesday 22/12 10:00; Christmas (Friday 25/12) and the weekend do not count: the third
    # business day is Monday 28/12.
    await sent_email(session, conversation, at(2026, 12, 22, 10, 0), "Segue a notificação.")

    assert await do_run_due_rules(session, now=at(2026, 12, 28, 9, 59)) == 0
    assert await outbound_texts(session, conversation.id) == ["Segue a notificação."]

    assert await do_run_due_rules(session, now=at(2026, 12, 28, 10, 0)) == 2
    texts = await outbound_texts(session, conversation.id)
    assert len(texts) == 2 and "ainda não recebemos sua resposta" in texts[1]
    # The reminder is a reply in the same thread, through the outbox.
    reminder = await session.scalar(
        sa.select(Message)
        .where(Message.conversation_id == conversation.id)
        .order_by(Message.id.desc())
    )
    assert reminder is not None
    outbox = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == reminder.id))
    assert outbox is not None and outbox.payload["to"] == conversation.address
    assert reminder.subject is not None and case.reference in reminder.subject
    entries = await timeline(session, case.id)
    fired = [e for e in entries if e.summary.startswith("Automação 'E-mail sem resposta")]
    assert len(fired) == 1
    assert "enviou o modelo 'lembrete_email'" in fired[0].summary
    assert "gerou o alerta 'email_ignored'" in fired[0].summary
    assert [a.kind for a in await alerts(session, case.id)] == ["email_ignored"]

    # The same moment again, and a week later: still one reminder for this silence.
    assert await do_run_due_rules(session, now=at(2026, 12, 28, 10, 0)) == 0
    assert await do_run_due_rules(session, now=at(2027, 1, 6, 10, 0)) == 0
    assert len(await outbound_texts(session, conversation.id)) == 2

    # The infringer answers, we write again on 29/12 11:00: a new silence. 01/01 is a holiday,
    # so the third business day is Monday 04/01.
    await do_receive_message(
        session,
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"<reply-{case.id}@example.com>",
            sender=conversation.address,
            text="Recebi, vou analisar.",
            received_at=at(2026, 12, 29, 9, 0).astimezone(dt.UTC),
            raw={},
            case_hint=case.id,
        ),
    )
    await sent_email(session, conversation, at(2026, 12, 29, 11, 0), "Aguardamos retorno.")
    assert await do_run_due_rules(session, now=at(2027, 1, 1, 11, 0)) == 0
    assert await do_run_due_rules(session, now=at(2027, 1, 4, 10, 59)) == 0
    assert await do_run_due_rules(session, now=at(2027, 1, 4, 11, 0)) == 2
    assert len(await outbound_texts(session, conversation.id)) == 4
    assert [e.trigger_key for e in await ledger(session, case.id)] == [
        "silence:0",
        f"silence:{(await session.scalar(sa.select(sa.func.max(Message.id)).where(Message.conversation_id == conversation.id, Message.direction == Direction.INBOUND)))}",
    ]


async def test_an_auto_reply_does_not_stop_the_clock_and_after_hours_waits_for_the_morning(
    session: AsyncSession,
) -> None:
    await only_rules(session, "email_sem_resposta")
    case, conversation = await email_case(session)
    # Wednesday 02/12 19:30, after hours: three business days later is Monday 07/12 19:30,
    # outside the shifts, so the reminder waits for Tuesday 08/12 09:00.
    await sent_email(session, conversation, at(2026, 12, 2, 19, 30), "Segue a notificação.")
    await do_receive_message(
        session,
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"<ooo-{case.id}@example.com>",
            sender=conversation.address,
            text="Estou fora do escritório.",
            received_at=at(2026, 12, 2, 19, 31).astimezone(dt.UTC),
            raw={},
            case_hint=case.id,
            answerable=False,
        ),
    )
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 23, 0)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 8, 9, 0)) == 2
    assert len(await outbound_texts(session, conversation.id)) == 2


# Notice deadline passed with no answer → SEM_RESPOSTA ------------------------------------------


async def test_notice_deadline_passed_without_answer_moves_to_sem_resposta(
    session: AsyncSession,
) -> None:
    await only_rules(session, "prazo_sem_resposta")
    silent = await make_case(session, status=CaseStatus.NOTIFICADO)
    answered = await make_case(session, status=CaseStatus.NOTIFICADO)
    for case in (silent, answered):
        case.notice_sent_at = at(2026, 11, 20, 10, 0).astimezone(dt.UTC)
        case.response_deadline = dt.date(2026, 12, 4)  # a Friday
    answered.status = CaseStatus.EM_ATENDIMENTO  # it answered (the pipeline moves it)
    await session.flush()

    # The deadline ends with Friday; the weekend is closed: the move waits for Monday 09:00.
    assert await do_run_due_rules(session, now=at(2026, 12, 4, 23, 59)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 5, 10, 0)) == 0
    assert silent.status is CaseStatus.NOTIFICADO
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 9, 0)) == 1
    await session.refresh(silent)
    await session.refresh(answered)
    assert silent.status is CaseStatus.SEM_RESPOSTA
    assert answered.status is CaseStatus.EM_ATENDIMENTO
    entries = await timeline(session, silent.id)
    assert any(
        e.summary.startswith("Automação 'Prazo da notificação vencido sem resposta'")
        and "moveu o caso de Notificado para Sem resposta" in e.summary
        for e in entries
    )
    # The status change itself says a rule did it.
    events = await get_events(session, case_id=silent.id, kinds=["case.status_changed"])
    assert str(events[-1].event.actor_kind) == "rule"
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 9, 0)) == 0


async def test_a_notice_answered_in_time_is_left_alone(session: AsyncSession) -> None:
    await only_rules(session, "prazo_sem_resposta")
    case, conversation = await email_case(session, status=CaseStatus.NOTIFICADO)
    case.notice_sent_at = at(2026, 11, 20, 10, 0).astimezone(dt.UTC)
    case.response_deadline = dt.date(2026, 12, 4)
    # An auto-reply is not an answer; a real one from the infringer is.
    message = Message(
        conversation_id=conversation.id,
        case_id=case.id,
        direction=Direction.INBOUND,
        channel=Channel.EMAIL,
        author_kind=AuthorKind.INFRINGER,
        text="Vou responder depois.",
        delivery_status=DeliveryStatus.RECEIVED,
        meta={"answerable": True},
        created_at=at(2026, 12, 1, 10, 0),
    )
    session.add(message)
    await session.flush()
    assert await do_run_due_rules(session, now=at(2026, 12, 8, 10, 0)) == 0
    assert case.status is CaseStatus.NOTIFICADO


# Installment overdue → reminder on the conversation's channel and alert ------------------------


async def agreed_case_with_payment(
    session: AsyncSession, issued_on: dt.date
) -> tuple[Case, PaymentRequest]:
    case, _conversation = await email_case(session, status=CaseStatus.EM_NEGOCIACAO)
    analyst = await make_analyst(session)
    case.agreed_amount, case.agreed_installments = Decimal("1500.00"), 3
    request = await do_issue_payment_request(
        session,
        case=case,
        brand=await session.get(Brand, case.brand_id),
        amount=Decimal("1500.00"),
        installments=3,
        provider=get_payment_provider(),
        actor=Actor.bot(),
        today=issued_on,
    )
    for target in (
        CaseStatus.ACORDO_PROPOSTO,
        CaseStatus.ACORDO_ASSINADO,
        CaseStatus.AGUARDANDO_PAGAMENTO,
    ):
        await do_change_status(session, case=case, target=target, actor=analyst_actor(analyst))
    return case, request


async def test_overdue_installment_sends_a_reminder_and_raises_an_alert_once(
    session: AsyncSession,
) -> None:
    await only_rules(session, "parcela_vencida")
    # Issued Tuesday 01/12: the first installment falls due Friday 04/12.
    case, request = await agreed_case_with_payment(session, dt.date(2026, 12, 1))
    conversation_id = await session.scalar(
        sa.select(Conversation.id).where(Conversation.case_id == case.id)
    )
    assert conversation_id is not None
    before = len(await outbound_texts(session, conversation_id))

    # Overdue once Friday ends; nothing goes out on the weekend.
    assert await do_run_due_rules(session, now=at(2026, 12, 4, 17, 0)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 6, 12, 0)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 9, 0)) == 2
    texts = await outbound_texts(session, conversation_id)
    assert len(texts) == before + 1
    assert "parcela 1" in texts[-1] and "R$ 500,00" in texts[-1] and "04/12/2026" in texts[-1]
    alerts = [e for e in await timeline(session, case.id) if e.kind is EntryKind.ALERT]
    assert (
        len(alerts)
        + len([x for x in await ledger(session, case.id) if "gerou o alerta" in x.summary])
        >= 1
    )
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 9, 0)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 9, 9, 0)) == 0
    [execution] = await ledger(session, case.id)
    assert execution.subject == f"installment:{request.installments[0].id}"
    assert execution.trigger_key == "due:2026-12-04"
    assert execution.state == "done" and execution.sends == 1


async def test_overdue_reminder_refused_by_whatsapp_still_raises_the_alert(
    session: AsyncSession,
) -> None:
    """Outside the 24-hour window a WhatsApp reminder needs an approved template SID: the send
    is refused with its reason on the timeline, the alert is still raised."""
    await only_rules(session, "parcela_vencida")
    phone = "+5511987650001"
    infringer = await make_infringer(session, phones=(phone,))
    case = await make_case(session, infringer=infringer, status=CaseStatus.EM_NEGOCIACAO)
    await conversation_for(session, case, Channel.WHATSAPP, phone)
    case.agreed_amount, case.agreed_installments = Decimal("900.00"), 1
    await do_issue_payment_request(
        session,
        case=case,
        brand=await session.get(Brand, case.brand_id),
        amount=Decimal("900.00"),
        installments=1,
        provider=get_payment_provider(),
        actor=Actor.bot(),
        today=dt.date(2026, 12, 1),
    )
    assert await do_run_due_rules(session, now=at(2026, 12, 7, 10, 0)) == 2
    [execution] = await ledger(session, case.id)
    assert execution.state == "partial"
    assert execution.sends == 0
    assert "não foi possível enviar o modelo 'lembrete_parcela'" in execution.summary
    assert "Content SID" in execution.summary
    assert "gerou o alerta 'installment_overdue'" in execution.summary


# Agreement accepted by an analyst → payment details -------------------------------------------


async def test_agreement_accepted_by_an_analyst_sends_the_payment_details_of_the_agreement(
    session: AsyncSession,
) -> None:
    await only_rules(session, "acordo_aceito")
    case, conversation = await email_case(session, status=CaseStatus.EM_NEGOCIACAO)
    analyst = await make_analyst(session)
    case.agreed_amount, case.agreed_installments = Decimal("1800.00"), 2
    await do_change_status(session, case=case, target=CaseStatus.ACORDO_PROPOSTO, actor=Actor.bot())
    start = await last_event_id(session)
    await do_change_status(
        session, case=case, target=CaseStatus.ACORDO_ASSINADO, actor=analyst_actor(analyst)
    )
    await feed_events(session, case.id, start)

    request = await session.scalar(
        sa.select(PaymentRequest).where(PaymentRequest.case_id == case.id)
    )
    assert request is not None
    assert request.total_amount == Decimal("1800.00") and request.installments_count == 2
    texts = await outbound_texts(session, conversation.id)
    assert len(texts) == 1
    assert "R$ 1.800,00" in texts[0] and f"/pagamento/{request.public_token}" in texts[0]
    # Fed again (a replay): nothing more.
    await feed_events(session, case.id, start)
    assert len(await outbound_texts(session, conversation.id)) == 1


async def test_agreement_signed_by_no_analyst_sends_nothing(session: AsyncSession) -> None:
    """The default asks for an analyst's acceptance: the same event caused by anyone else
    (here, written by hand as the system) does not fire it."""
    from api.events import emit
    from api.events import kinds as ev

    await only_rules(session, "acordo_aceito")
    case, conversation = await email_case(session, status=CaseStatus.EM_NEGOCIACAO)
    start = await last_event_id(session)
    emit(
        session,
        ev.AgreementAccepted(case_id=case.id, actor_kind=ev.EventActorKind.SYSTEM),
    )
    await session.flush()
    await feed_events(session, case.id, start)
    assert await outbound_texts(session, conversation.id) == []
    assert await ledger(session, case.id) == []


# Payment confirmed → thanks and status -------------------------------------------------------


async def test_payment_confirmed_thanks_the_infringer(session: AsyncSession) -> None:
    await only_rules(session, "pagamento_confirmado")
    case, _request = await agreed_case_with_payment(session, dt.date(2026, 12, 1))
    conversation_id = await session.scalar(
        sa.select(Conversation.id).where(Conversation.case_id == case.id)
    )
    assert conversation_id is not None
    analyst = await make_analyst(session)
    start = await last_event_id(session)
    await do_change_status(session, case=case, target=CaseStatus.PAGO, actor=analyst_actor(analyst))
    await feed_events(session, case.id, start)
    texts = await outbound_texts(session, conversation_id)
    assert "Confirmamos o pagamento" in texts[-1]
    [execution] = await ledger(session, case.id)
    assert "o caso já está em Pago" in execution.summary
    assert execution.state == "partial"


async def test_payment_confirmed_by_reconciliation_moves_the_case_to_pago(
    session: AsyncSession,
) -> None:
    """A confirmation that did not come from a status move (reconciliation) moves the case to
    PAGO through the rule, once, and is not emitted a second time."""
    from api.events import emit
    from api.events import kinds as ev

    await only_rules(session, "pagamento_confirmado")
    case, _request = await agreed_case_with_payment(session, dt.date(2026, 12, 1))
    start = await last_event_id(session)
    emit(
        session,
        ev.PaymentConfirmed(
            case_id=case.id, actor_kind=ev.EventActorKind.SYSTEM, amount=Decimal("1500.00")
        ),
    )
    await session.flush()
    await feed_events(session, case.id, start)
    assert case.status is CaseStatus.PAGO
    confirmations = await get_events(
        session, case_id=case.id, kinds=["payment.confirmed"], after_id=start
    )
    assert len(confirmations) == 1
