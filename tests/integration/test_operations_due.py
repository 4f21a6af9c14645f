"""Time-based alerts by frozen clock: `run_due_alerts(at)` stands at a given moment (as
`tratativa operations run-due --at` does) over a calendar with a lunch break, weekends,
Christmas and the New Year. Each kind fires at its moment and not a minute before, once (a
second sweep for the same moment changes nothing), and again only when its deadline moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Holder,
    Message,
)
from api.conversations.service import create_conversation
from api.db import unit_of_work
from api.events.models import StoredEvent
from api.operations.alerts import count_active, do_snooze
from api.operations.calendar import CALENDAR_SETTING_KEY, do_update_calendar
from api.operations.due import run_due_alerts
from api.operations.models import Alert, OperationsSetting
from api.payments.models import Installment
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.timeline.models import TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
SP = ZoneInfo("America/Sao_Paulo")
_seq = iter(range(50_000_000, 99_999_999, 104743))


def sp(y: int, m: int, d: int, h: int = 0, mi: int = 0) -> dt.datetime:
    return dt.datetime(y, m, d, h, mi, tzinfo=SP)


@pytest.fixture(autouse=True, scope="module")
async def split_shifts(database_url: str) -> AsyncIterator[None]:
    """The firm works 09:00-12:00 and 13:00-18:00, Monday to Friday (an admin's setting)."""
    async with unit_of_work() as session:
        await do_update_calendar(
            session, changes={"shifts": "09:00-12:00,13:00-18:00"}, analyst_id=None
        )
    yield
    async with unit_of_work() as session:
        await session.execute(
            sa.delete(OperationsSetting).where(OperationsSetting.key == CALENDAR_SETTING_KEY)
        )


async def a_conversation(
    channel: Channel, *, status: CaseStatus = CaseStatus.EM_ATENDIMENTO
) -> tuple[int, int, int]:
    """(conversation id, case id, owner id) of an open conversation of an owned case."""
    n = next(_seq)
    address = f"infrator{n}@exemplo.com.br" if channel is Channel.EMAIL else f"+55419{n:08d}"
    kind = ContactKind.EMAIL if channel is Channel.EMAIL else ContactKind.PHONE
    async with unit_of_work() as session:
        owner = await make_analyst(session)
        infringer = await make_infringer(
            session,
            emails=(address,) if channel is Channel.EMAIL else (),
            phones=(address,) if channel is Channel.WHATSAPP else (),
        )
        case = await make_case(session, infringer=infringer, status=status)
        case.assignee_id = owner.id
        found = await do_identify_sender(session, kind=kind, raw=address)
        conversation = await create_conversation(
            session, contact=found.contact, channel=channel, address=address, case=case
        )
        return conversation.id, case.id, owner.id


async def alerts(subject: str, kind: str | None = None) -> list[Alert]:
    async with unit_of_work() as session:
        query = sa.select(Alert).where(Alert.subject == subject)
        if kind is not None:
            query = query.where(Alert.kind == kind)
        return list(await session.scalars(query.order_by(Alert.id)))


async def footprint() -> tuple[int, int, int]:
    async with unit_of_work() as session:
        counts = [
            await session.scalar(sa.select(sa.func.count()).select_from(model))
            for model in (Alert, TimelineEntry, StoredEvent)
        ]
    return counts[0] or 0, counts[1] or 0, counts[2] or 0


async def sweep_twice(at: dt.datetime) -> None:
    """Sweep at `at`, then again: the second pass changes nothing anywhere."""
    await run_due_alerts(at)
    before = await footprint()
    assert await run_due_alerts(at) == 0
    assert await footprint() == before


async def update_conversation(conversation_id: int, **values: object) -> None:
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Conversation).where(Conversation.id == conversation_id).values(**values)
        )


async def add_message(
    conversation_id: int,
    case_id: int,
    *,
    at: dt.datetime,
    direction: Direction,
    author: AuthorKind,
    intent: str | None = None,
) -> None:
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        session.add(
            Message(
                conversation_id=conversation_id,
                case_id=case_id,
                direction=direction,
                channel=conversation.channel,
                author_kind=author,
                text="…",
                delivery_status=DeliveryStatus.RECEIVED
                if direction is Direction.INBOUND
                else DeliveryStatus.SENT,
                intent=intent,
                created_at=at,
            )
        )
        if direction is Direction.INBOUND:
            conversation.last_inbound_at = at
        else:
            conversation.last_outbound_at = at


async def test_email_ignored_three_business_days_across_christmas_then_rearmed() -> None:
    conversation_id, case_id, owner_id = await a_conversation(Channel.EMAIL)
    subject = f"conv:{conversation_id}"
    # Our notice went out on Wednesday 23/12 at 10:00; 24/12 counts, 25/12 (Natal) and the
    # weekend do not: three business days end on Tuesday 29/12 at 10:00.
    await update_conversation(conversation_id, last_outbound_at=sp(2026, 12, 23, 10))
    await sweep_twice(sp(2026, 12, 29, 9, 59))
    assert await alerts(subject) == []
    await sweep_twice(sp(2026, 12, 29, 10, 0))
    [alert] = await alerts(subject, "email_ignored")
    assert (alert.recipient_id, alert.case_id, alert.due_at) == (
        owner_id,
        case_id,
        sp(2026, 12, 29, 10),
    )
    # A new e-mail of ours (a reminder on Wednesday 30/12) is a new silence: 31/12, then
    # 01/01 (holiday) and the weekend are skipped → Tuesday 05/01 at 10:00.
    await update_conversation(conversation_id, last_outbound_at=sp(2026, 12, 30, 10))
    await sweep_twice(sp(2027, 1, 5, 9, 59))
    assert len(await alerts(subject)) == 1
    await sweep_twice(sp(2027, 1, 5, 10, 0))
    assert [a.cycle for a in await alerts(subject)] == [
        f"t{int(sp(2026, 12, 23, 10).timestamp())}",
        f"t{int(sp(2026, 12, 30, 10).timestamp())}",
    ]


async def test_an_answered_email_is_not_ignored() -> None:
    conversation_id, _, _ = await a_conversation(Channel.EMAIL)
    await update_conversation(
        conversation_id,
        last_outbound_at=sp(2026, 12, 1, 10),
        last_inbound_at=sp(2026, 12, 2, 15),
    )
    await sweep_twice(sp(2026, 12, 10, 10))
    assert await alerts(f"conv:{conversation_id}") == []


async def test_handoff_first_response_counts_business_minutes_from_the_handoff() -> None:
    conversation_id, case_id, owner_id = await a_conversation(Channel.WHATSAPP)
    # Handed off on Monday 07/12 at 11:50; the target is 30 business minutes: 10 before
    # lunch and 20 after → 13:20. The bot's turns after the handoff do not stop the clock.
    await update_conversation(
        conversation_id, holder=Holder.WAITING_HUMAN, handoff_at=sp(2026, 12, 7, 11, 50)
    )
    await add_message(
        conversation_id,
        case_id,
        at=sp(2026, 12, 7, 11, 51),
        direction=Direction.OUTBOUND,
        author=AuthorKind.BOT,
    )
    await sweep_twice(sp(2026, 12, 7, 13, 19))
    assert await alerts(f"conv:{conversation_id}") == []
    await sweep_twice(sp(2026, 12, 7, 13, 20))
    [alert] = await alerts(f"conv:{conversation_id}", "handoff_first_response")
    assert alert.to_supervisors is True and alert.recipient_id == owner_id
    assert alert.due_at == sp(2026, 12, 7, 13, 20)


async def test_a_handoff_answered_by_a_person_raises_nothing() -> None:
    conversation_id, case_id, _ = await a_conversation(Channel.WHATSAPP)
    await update_conversation(
        conversation_id, holder=Holder.HUMAN, handoff_at=sp(2026, 12, 7, 10, 0)
    )
    await add_message(
        conversation_id,
        case_id,
        at=sp(2026, 12, 7, 10, 5),
        direction=Direction.OUTBOUND,
        author=AuthorKind.ANALYST,
    )
    await sweep_twice(sp(2026, 12, 8, 10, 0))
    assert await alerts(f"conv:{conversation_id}", "handoff_first_response") == []


async def test_next_response_target_from_the_first_unanswered_message_overnight() -> None:
    conversation_id, case_id, owner_id = await a_conversation(Channel.WHATSAPP)
    analyst_id = owner_id
    await update_conversation(
        conversation_id,
        holder=Holder.HUMAN,
        analyst_id=analyst_id,
        handoff_at=sp(2026, 12, 7, 9, 0),
    )
    await add_message(
        conversation_id,
        case_id,
        at=sp(2026, 12, 7, 9, 10),
        direction=Direction.OUTBOUND,
        author=AuthorKind.ANALYST,
    )
    for minute in (30, 40):  # two unanswered messages: the clock starts at the first
        await add_message(
            conversation_id,
            case_id,
            at=sp(2026, 12, 7, 17, minute),
            direction=Direction.INBOUND,
            author=AuthorKind.INFRINGER,
        )
    # 60 business minutes from Monday 17:30: 30 that evening, 30 on Tuesday → 09:30.
    await sweep_twice(sp(2026, 12, 8, 9, 29))
    assert await alerts(f"conv:{conversation_id}", "handoff_next_response") == []
    await sweep_twice(sp(2026, 12, 8, 9, 30))
    [alert] = await alerts(f"conv:{conversation_id}", "handoff_next_response")
    assert (alert.recipient_id, alert.to_supervisors) == (analyst_id, True)


async def test_follow_ups_of_a_conversation_and_of_a_case_on_a_saturday() -> None:
    conversation_id, case_id, owner_id = await a_conversation(Channel.WHATSAPP)
    await update_conversation(conversation_id, follow_up_at=sp(2026, 12, 7, 15, 0))
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Case).where(Case.id == case_id).values(follow_up_on=dt.date(2026, 12, 5))
        )
    await sweep_twice(sp(2026, 12, 7, 8, 59))
    assert await alerts(f"case:{case_id}") == []
    await sweep_twice(sp(2026, 12, 7, 9, 0))  # the Saturday's follow-up at Monday's opening
    [case_alert] = await alerts(f"case:{case_id}", "follow_up_due")
    assert case_alert.recipient_id == owner_id
    assert await alerts(f"conv:{conversation_id}") == []
    await sweep_twice(sp(2026, 12, 7, 15, 0))
    [conv_alert] = await alerts(f"conv:{conversation_id}", "follow_up_due")
    assert conv_alert.due_at == sp(2026, 12, 7, 15, 0)


async def test_notice_deadline_approaching_passed_and_moved() -> None:
    _, case_id, _ = await a_conversation(Channel.EMAIL, status=CaseStatus.NOTIFICADO)
    subject = f"case:{case_id}"
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Case)
            .where(Case.id == case_id)
            .values(response_deadline=dt.date(2026, 12, 28))
        )
    # Two business days before Monday 28/12: Thursday 24 and Wednesday 23 (Natal skipped).
    await sweep_twice(sp(2026, 12, 22, 18, 0))
    assert await alerts(subject) == []
    await sweep_twice(sp(2026, 12, 23, 9, 0))
    assert [a.kind for a in await alerts(subject)] == ["deadline_approaching"]
    await sweep_twice(sp(2026, 12, 28, 23, 59))
    assert [a.kind for a in await alerts(subject)] == ["deadline_approaching"]
    await sweep_twice(sp(2026, 12, 29, 0, 0))
    approaching, passed = await alerts(subject)
    assert passed.kind == "deadline_passed" and passed.to_supervisors is True
    assert approaching.state == "resolved"  # moot once the deadline has passed
    # The deadline moves to Friday 08/01: both alerts are re-armed for the new date.
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Case).where(Case.id == case_id).values(response_deadline=dt.date(2027, 1, 8))
        )
    await sweep_twice(sp(2027, 1, 6, 8, 59))
    assert len(await alerts(subject)) == 2
    await sweep_twice(sp(2027, 1, 6, 9, 0))
    assert [(a.kind, a.cycle) for a in await alerts(subject)][2:] == [
        ("deadline_approaching", "2027-01-08")
    ]


async def test_installment_overdue_once_per_due_date() -> None:
    _, case_id, owner_id = await a_conversation(Channel.WHATSAPP, status=CaseStatus.EM_NEGOCIACAO)
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        request = await do_issue_payment_request(
            session,
            case=case,
            brand=case.brand,
            amount=Decimal("1500.00"),
            installments=3,
            provider=get_payment_provider(),
            actor=Actor.bot(),
        )
        request_id = request.id
        first = await session.scalar(
            sa.select(Installment)
            .where(Installment.payment_request_id == request_id)
            .order_by(Installment.number)
            .limit(1)
        )
        assert first is not None
        first.due_date = dt.date(2027, 2, 10)
        first_id = first.id
        await session.execute(
            sa.update(Installment)
            .where(Installment.payment_request_id == request_id, Installment.id != first_id)
            .values(due_date=dt.date(2027, 6, 10))
        )
    subject = f"inst:{first_id}"
    await sweep_twice(sp(2027, 2, 10, 23, 59))
    assert await alerts(subject) == []
    await sweep_twice(sp(2027, 2, 11, 0, 0))
    [alert] = await alerts(subject, "installment_overdue")
    assert (alert.case_id, alert.recipient_id, alert.to_supervisors) == (case_id, owner_id, True)
    assert alert.title.startswith("Parcela vencida: 1ª")


async def test_payment_reported_and_not_confirmed_after_two_business_days() -> None:
    conversation_id, case_id, owner_id = await a_conversation(Channel.WHATSAPP)
    # "já paguei" on Thursday 03/12 at 16:00 → Friday, Monday 07/12 at 16:00.
    await add_message(
        conversation_id,
        case_id,
        at=sp(2026, 12, 3, 16, 0),
        direction=Direction.INBOUND,
        author=AuthorKind.INFRINGER,
        intent="inform_paid",
    )
    await sweep_twice(sp(2026, 12, 7, 15, 59))
    assert await alerts(f"case:{case_id}", "payment_unconfirmed") == []
    await sweep_twice(sp(2026, 12, 7, 16, 0))
    [alert] = await alerts(f"case:{case_id}", "payment_unconfirmed")
    assert alert.recipient_id == owner_id


async def test_a_snoozed_alert_wakes_at_its_time() -> None:
    conversation_id, _, owner_id = await a_conversation(Channel.WHATSAPP)
    await update_conversation(conversation_id, follow_up_at=sp(2026, 12, 9, 10, 0))
    await sweep_twice(sp(2026, 12, 9, 10, 0))
    [alert] = await alerts(f"conv:{conversation_id}")
    async with unit_of_work() as session:
        owner = await session.get(Analyst, owner_id)
        assert owner is not None
        assert await count_active(session, analyst=owner, now=sp(2026, 12, 9, 10, 1)) == 1
        await do_snooze(
            session,
            alert_id=alert.id,
            analyst=owner,
            until=sp(2026, 12, 9, 14, 0),
            now=sp(2026, 12, 9, 10, 1),
        )
        assert await count_active(session, analyst=owner, now=sp(2026, 12, 9, 10, 2)) == 0
    await sweep_twice(sp(2026, 12, 9, 14, 0))
    [woken] = await alerts(f"conv:{conversation_id}")
    assert (woken.state, woken.snoozed_until) == ("open", None)
