"""No N+1 on the panel's workspace screens: the cases list (a search), a case page, a person
page, a conversation page and its timeline fragment, and the unmatched-mail queue each take the
same number of queries with few rows as with many (listings, conversations, payment requests
and installments, cases of a person, notes, mails in the queue)."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.contacts.models import Infringer
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation
from api.db import unit_of_work, utcnow
from api.events.consumers import wait_for_inline_drains
from api.handoff.service import do_add_note
from api.payments.provider import get_payment_provider
from api.payments.service import do_issue_payment_request
from api.timeline.service import Actor
from tests.factories import make_analyst, make_brand, make_case, make_infringer
from tests.helpers.queries import QueryLog, count_queries
from tests.integration.test_panel import login, panel_app

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(61_000_000, 99_999_999, 104761))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=panel_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def queries_for(client: httpx.AsyncClient, url: str, **params: str) -> QueryLog:
    # The setup's commits woke the inline event consumers; their passes (lingering up to
    # LINGER_SECONDS) would otherwise land among the page's queries, depending on timing.
    await wait_for_inline_drains()
    with count_queries() as log:
        response = await client.get(url, params=params)
    assert response.status_code == 200, response.text[:500]
    return log


def same(few: QueryLog, many: QueryLog) -> None:
    assert many.count == few.count, f"{few.count} → {many.count} queries:\n{many}"


async def inbound(phone: str, text: str) -> int:
    async with unit_of_work() as session:
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text=text,
                received_at=utcnow(),
                raw={},
            ),
        )
        return received.conversation.id


async def grow_case(case_id: int, phone: str, *, times: int) -> None:
    """More of everything a case page lists: listings, payment requests with installments,
    messages and notes on its conversation."""
    async with unit_of_work() as session:
        case = await session.get(Case, case_id)
        assert case is not None
        await session.refresh(case, ["listings"])
        brand = await make_brand(session)
        more = await make_case(
            session,
            brand=brand,
            listings=tuple(
                f"https://loja.exemplo.com.br/p/{uuid.uuid4().hex}" for _ in range(times)
            ),
        )
        for listing in list(more.listings):
            listing.case_id = case.id
        case.agreed_amount = Decimal("1200.00")
        case.agreed_installments = 4
        await session.flush()
        for _ in range(times):
            await do_issue_payment_request(
                session,
                case=case,
                brand=brand,
                amount=Decimal("1200.00"),
                installments=4,
                provider=get_payment_provider(),
                actor=Actor.system(),
            )
    conversation_id = await inbound(phone, "mais uma mensagem")
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        conversation = await session.get(Conversation, conversation_id)
        for n in range(times):
            await do_add_note(session, analyst=analyst, text=f"nota {n}", conversation=conversation)


async def test_case_page_conversation_and_timeline_do_not_grow_with_rows(
    client: httpx.AsyncClient,
) -> None:
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        person = await make_infringer(session, name="Contagem Caso", phones=(phone,))
        case = await make_case(session, infringer=person, status=CaseStatus.EM_NEGOCIACAO)
        case_id = case.id
    conversation_id = await inbound(phone, "oi")
    await grow_case(case_id, phone, times=1)  # one of each: what grows below is the row count
    await login(client, Role.SUPERVISOR)
    pages = (
        f"/painel/casos/{case_id}",
        f"/painel/conversas/{conversation_id}",
        f"/painel/conversas/{conversation_id}/linha-do-tempo",
    )
    few = [await queries_for(client, url) for url in pages]
    await grow_case(case_id, phone, times=5)
    many = [await queries_for(client, url) for url in pages]
    for before, after in zip(few, many, strict=True):
        same(before, after)


async def test_cases_search_and_person_page_do_not_grow_with_rows(
    client: httpx.AsyncClient,
) -> None:
    token = f"Quantidade{uuid.uuid4().hex[:10]}"
    async with unit_of_work() as session:
        person = await make_infringer(session, name=f"{token} Um")
        await make_case(session, infringer=person)
        person_id = person.id
    await login(client, Role.SUPERVISOR)
    few_search = await queries_for(client, "/painel/casos", q=token)
    few_person = await queries_for(client, f"/painel/pessoas/{person_id}")
    async with unit_of_work() as session:
        person_row = await session.get(Infringer, person_id)
        assert person_row is not None
        for n in range(6):
            await make_case(session, infringer=person_row, status=CaseStatus.NOTIFICADO)
            other = await make_infringer(session, name=f"{token} Outro {n}")
            await make_case(session, infringer=other, status=CaseStatus.EM_ATENDIMENTO)
    many_search = await queries_for(client, "/painel/casos", q=token)
    many_person = await queries_for(client, f"/painel/pessoas/{person_id}")
    same(few_search, many_search)
    same(few_person, many_person)


async def unmatched_mail(stranger: str) -> None:
    async with unit_of_work() as session:
        await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@outro.com.br>",
                sender=stranger,
                text="Recebi uma notificação de vocês, do que se trata?",
                received_at=utcnow() - dt.timedelta(minutes=2),
                raw={},
                subject="Notificação",
                meta={"from": stranger, "from_name": "Fulano"},
            ),
        )


async def test_unmatched_queue_does_not_grow_with_rows(client: httpx.AsyncClient) -> None:
    await unmatched_mail(f"desconhecido{next(_seq)}@outro.com.br")
    await login(client, Role.SUPERVISOR)
    few = await queries_for(client, "/painel/nao-vinculados")
    for _ in range(5):
        await unmatched_mail(f"desconhecido{next(_seq)}@outro.com.br")
    many = await queries_for(client, "/painel/nao-vinculados")
    same(few, many)
