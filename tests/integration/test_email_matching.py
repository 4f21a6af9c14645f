"""Matching an inbound e-mail to its case, rule by rule, and the unmatched queue an analyst
works through the API."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from email.utils import parseaddr

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.email.ingest import Ingested, Outcome, do_ingest_email
from api.channels.email.routes import router as email_router
from api.config import get_settings
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.conversations.service import create_conversation
from api.identifiers.documents import cnpj_check_digits
from api.inbox.models import MatchSuggestion, SuggestionState
from api.timeline.models import EntryKind, TimelineEntry
from api.web.deps import get_session
from tests.factories import make_analyst, make_case, make_infringer
from tests.integration.email_servers import load_eml, make_mail, personalize, tagged_id

pytestmark = pytest.mark.integration

# References in a year the case counter never reaches in tests, so they are unique per run.
_refs = itertools.count(int(uuid.uuid4().int % 800_000) + 100_000)


def new_ref() -> str:
    return f"INF-2031-{next(_refs):06d}"


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def case_with(
    session: AsyncSession,
    *,
    emails: tuple[str, ...] = (),
    name: str | None = None,
    document: str | None = None,
    listings: tuple[str, ...] = (),
    status: CaseStatus = CaseStatus.NOTIFICADO,
) -> Case:
    infringer = await make_infringer(
        session, name=name or "Fulano de Tal", emails=emails, document=document
    )
    case = await make_case(
        session,
        infringer=infringer,
        status=status,
        listings=listings
        or (f"https://produto.mercadolivre.com.br/MLB-{uuid.uuid4().int % 10**10}",),
    )
    case.reference = new_ref()
    await session.flush()
    return case


async def ingest(session: AsyncSession, raw: bytes) -> Ingested:
    result = await do_ingest_email(session, raw)
    assert result.outcome is Outcome.STORED
    return result


async def stored(session: AsyncSession, result: Ingested) -> tuple[Message, Conversation]:
    assert result.message_id is not None
    message = await session.get(Message, result.message_id)
    assert message is not None
    conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None
    return message, conversation


async def sent_email(session: AsyncSession, case: Case, address: str, provider_id: str) -> Message:
    """An e-mail we sent for the case (as the outbox leaves it once SMTP accepted it)."""
    found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw=address)
    conversation = await create_conversation(
        session, contact=found.contact, channel=Channel.EMAIL, address=address, case=case
    )
    message = Message(
        conversation_id=conversation.id,
        case_id=case.id,
        direction=Direction.OUTBOUND,
        channel=Channel.EMAIL,
        author_kind=AuthorKind.BOT,
        text="Notificação",
        subject=f"Notificação extrajudicial [{case.reference}]",
        provider_id=provider_id,
        delivery_status=DeliveryStatus.SENT,
    )
    session.add(message)
    await session.flush()
    return message


def valid_cnpj() -> str:
    first12 = f"{uuid.uuid4().int % 10**12:012d}"
    return first12 + cnpj_check_digits(first12)


async def test_thread_in_reply_to_our_message_decides(session: AsyncSession) -> None:
    t = tag()
    case = await case_with(session)
    ours = tagged_id("tt.41.7f3a9c2e51d04b1a8c7e@tratativa.example", t)
    await sent_email(session, case, f"outro-{t}@lojadojoao.com.br", ours)

    result = await ingest(session, personalize(load_eml("gmail_reply_pt.eml"), t))
    message, conversation = await stored(session, result)
    assert result.match is not None and result.match.rule == "thread"
    assert conversation.case_id == case.id and message.case_id == case.id
    assert (message.meta or {})["match_reason"] == "resposta à mensagem enviada por nós"


async def test_thread_uses_every_reference_and_mail_we_received(session: AsyncSession) -> None:
    t = tag()
    case = await case_with(session, emails=(f"primeira-{t}@loja.com.br",))
    first = make_mail(
        sender=f"primeira-{t}@loja.com.br",
        subject="Sobre a notificação",
        body="Recebi a notificação.",
        message_id=f"first-{t}@loja.com.br",
    )
    assert (await ingest(session, first)).case_id == case.id
    # A colleague answers from an unknown address, quoting the first mail somewhere in
    # References only; In-Reply-To names a message we never saw.
    reply = make_mail(
        sender=f"colega-{t}@outrodominio.com.br",
        subject="Re: Sobre a notificação",
        body="Complementando o e-mail do meu sócio.",
        message_id=f"second-{t}@outrodominio.com.br",
        headers={
            "In-Reply-To": f"<unknown-{t}@elsewhere>",
            "References": f"<root-{t}@elsewhere> <first-{t}@loja.com.br> <unknown-{t}@elsewhere>",
        },
    )
    result = await ingest(session, reply)
    assert result.match is not None and result.match.rule == "thread"
    assert result.match.reason == "resposta à mensagem recebida"
    assert result.case_id == case.id


async def test_case_reference_in_subject(session: AsyncSession) -> None:
    t = tag()
    case = await case_with(session)
    raw = personalize(load_eml("lawyer_formal_cc.eml"), t, {"INF-2026-000131": case.reference})
    result = await ingest(session, raw)
    assert result.match is not None and result.match.rule == "subject_reference"
    assert result.case_id == case.id
    message, _ = await stored(session, result)
    assert (message.meta or {})["cc"] == [
        "financeiro@comercialbrisa.com.br",
        "estagiario@mendesadvocacia.adv.br",
    ]


async def test_sender_address(session: AsyncSession) -> None:
    t = tag()
    address = f"jose.ferreira+{t}@ferreiracomercio.com.br"
    case = await case_with(session, emails=(address,))
    result = await ingest(session, personalize(load_eml("latin1_qp.eml"), t))
    assert result.match is not None and result.match.rule == "sender_address"
    assert result.case_id == case.id


async def test_sender_domain_among_notified_domains(session: AsyncSession) -> None:
    t = tag()
    domain = f"loja{t}.com.br"
    case = await case_with(session)
    session.add(
        ContactPoint(kind=ContactKind.EMAIL_DOMAIN, value=domain, infringer_id=case.infringer_id)
    )
    await session.flush()
    raw = make_mail(sender=f"financeiro@{domain}", subject="Dúvida", body="Qual o valor?")
    result = await ingest(session, raw)
    assert result.match is not None and result.match.rule == "sender_domain"
    assert result.case_id == case.id


async def test_a_free_mail_domain_never_matches_by_domain(session: AsyncSession) -> None:
    case = await case_with(session)
    session.add(
        ContactPoint(
            kind=ContactKind.EMAIL_DOMAIN, value="gmail.com", infringer_id=case.infringer_id
        )
    )
    await session.flush()
    raw = make_mail(sender=f"alguem-{tag()}@gmail.com", subject="Oi", body="Olá")
    result = await ingest(session, raw)
    assert result.case_id is None


async def test_listing_url_in_the_body(session: AsyncSession) -> None:
    t = tag()
    listing = f"https://produto.mercadolivre.com.br/MLB-{uuid.uuid4().int % 10**10}"
    case = await case_with(session, listings=(listing,))
    spelled = listing.replace("https://", "http://www.") + "/?utm_source=share"
    raw = make_mail(
        sender=f"vendas-{t}@desconhecida.com.br",
        subject="Anúncio removido",
        body=f"Já tirei do ar o anúncio {spelled}.",
    )
    result = await ingest(session, raw)
    assert result.match is not None and result.match.rule == "listing_url"
    assert result.case_id == case.id


async def test_document_in_the_body(session: AsyncSession) -> None:
    cnpj = valid_cnpj()
    case = await case_with(session, document=cnpj)
    formatted = f"{cnpj[:2]}.{cnpj[2:5]}.{cnpj[5:8]}/{cnpj[8:12]}-{cnpj[12:]}"
    raw = make_mail(
        sender=f"contato-{tag()}@empresa.com.br",
        subject="Notificação",
        body=f"Nossa empresa, CNPJ {formatted}, não vende essa marca.",
    )
    result = await ingest(session, raw)
    assert result.match is not None and result.match.rule == "document"
    assert result.case_id == case.id


async def test_rules_apply_in_order(session: AsyncSession) -> None:
    t = tag()
    address = f"dono-{t}@lojaordem.com.br"
    by_address = await case_with(session, emails=(address,))
    by_subject = await case_with(session)
    raw = make_mail(
        sender=address, subject=f"Re: Notificação [{by_subject.reference}]", body="Sobre o caso."
    )
    result = await ingest(session, raw)
    assert result.match is not None and result.match.rule == "subject_reference"
    assert result.case_id == by_subject.id
    assert by_address.id != by_subject.id


async def test_a_listing_in_two_cases_is_ambiguous_and_suggests_both(
    session: AsyncSession,
) -> None:
    listing = f"https://shopee.com.br/produto-i.{uuid.uuid4().int % 10**8}.1"
    first = await case_with(session, listings=(listing,))
    second = await case_with(session, listings=(listing,))
    raw = make_mail(sender=f"x-{tag()}@semcaso.com.br", subject="Oi", body=f"Veja {listing}")
    result = await ingest(session, raw)
    assert result.case_id is None
    assert result.match is not None
    assert {s.case_id for s in result.match.suggestions} == {first.id, second.id}
    rows = (
        await session.scalars(
            sa.select(MatchSuggestion).where(MatchSuggestion.message_id == result.message_id)
        )
    ).all()
    assert {r.case_id for r in rows} == {first.id, second.id}


# --- the unmatched queue, through the API ---------------------------------------------------


@pytest.fixture
async def client(session: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app()
    app.include_router(email_router)

    async def _session() -> AsyncIterator[AsyncSession]:
        yield session
        await session.flush()

    app.dependency_overrides[get_session] = _session
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def login(client: httpx.AsyncClient, session: AsyncSession) -> dict[str, str]:
    analyst = await make_analyst(session, role=Role.ANALYST)
    response = await client.post(
        "/api/v1/auth/token", data={"username": analyst.email, "password": "correct-horse"}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_unmatched_mail_is_queued_with_ranked_suggestions_and_confirmed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    t = tag()
    quoted = await case_with(session)
    named = await case_with(session, name=f"Fulano {t} da Silva")
    sender = f"novo-{t}@semregistro.com.br"
    raw = make_mail(
        sender=f"Fulano {t} da Silva <{sender}>",
        subject="Dúvida",
        body=f"Recebi um aviso.\n\n> Referência do caso: {quoted.reference}\n",
    )
    result = await ingest(session, raw)
    assert result.case_id is None
    headers = await login(client, session)

    assert (await client.get("/api/v1/email/unmatched")).status_code == 401
    listed = await client.get("/api/v1/email/unmatched?limit=200", headers=headers)
    assert listed.status_code == 200, listed.text
    item = next(i for i in listed.json()["items"] if i["message_id"] == result.message_id)
    assert item["sender"] == sender and item["answerable"] is True
    assert [(s["case_id"], s["rule"]) for s in item["suggestions"]] == [
        (quoted.id, "body_reference"),
        (named.id, "sender_name"),
    ]
    assert item["suggestions"][0]["score"] > item["suggestions"][1]["score"]
    assert item["suggestions"][0]["reference"] == quoted.reference

    rejected = await client.post(
        f"/api/v1/email/unmatched/{result.message_id}/reject",
        json={"case_id": named.id},
        headers=headers,
    )
    assert rejected.status_code == 204, rejected.text
    again = await client.post(
        f"/api/v1/email/unmatched/{result.message_id}/reject",
        json={"case_id": named.id},
        headers=headers,
    )
    assert again.status_code == 404

    confirmed = await client.post(
        f"/api/v1/email/unmatched/{result.message_id}/confirm",
        json={"case_id": quoted.id},
        headers=headers,
    )
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["case_id"] == quoted.id

    message, conversation = await stored(session, result)
    await session.refresh(conversation)
    await session.refresh(message)
    assert conversation.case_id == quoted.id and message.case_id == quoted.id
    contact = await session.get(ContactPoint, conversation.contact_point_id)
    assert contact is not None and contact.infringer_id == quoted.infringer_id
    await session.refresh(quoted)
    assert quoted.status is CaseStatus.EM_ATENDIMENTO
    states = dict(
        (
            await session.execute(
                sa.select(MatchSuggestion.case_id, MatchSuggestion.state).where(
                    MatchSuggestion.message_id == result.message_id
                )
            )
        ).all()
    )
    assert states == {quoted.id: SuggestionState.CONFIRMED, named.id: SuggestionState.REJECTED}
    entries = (
        await session.scalars(
            sa.select(TimelineEntry.summary).where(
                TimelineEntry.conversation_id == conversation.id,
                TimelineEntry.kind == EntryKind.SYSTEM,
            )
        )
    ).all()
    assert any("rejeitada" in e for e in entries)
    assert any(f"vinculada ao caso {quoted.reference}" in e for e in entries)

    relisted = await client.get("/api/v1/email/unmatched?limit=200", headers=headers)
    assert result.message_id not in {i["message_id"] for i in relisted.json()["items"]}


async def test_confirming_a_conversation_linked_elsewhere_is_a_conflict(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    t = tag()
    owner = await case_with(session, emails=(f"dono-{t}@vinculado.com.br",))
    other = await case_with(session)
    result = await ingest(
        session, make_mail(sender=f"dono-{t}@vinculado.com.br", subject="Oi", body="Olá")
    )
    assert result.case_id == owner.id
    headers = await login(client, session)
    response = await client.post(
        f"/api/v1/email/unmatched/{result.message_id}/confirm",
        json={"case_id": other.id},
        headers=headers,
    )
    assert response.status_code == 409
    missing = await client.post(
        "/api/v1/email/unmatched/999999999/confirm", json={"case_id": other.id}, headers=headers
    )
    assert missing.status_code == 404


async def test_a_copy_of_our_own_mail_is_never_answered(session: AsyncSession) -> None:
    ours = parseaddr(get_settings().email_from)[1]
    raw = make_mail(
        sender=ours, subject="Cópia", body="Nossa própria mensagem.", message_id=f"{tag()}@x"
    )
    result = await do_ingest_email(session, raw)
    message, _ = await stored(session, result)
    assert (message.meta or {})["answerable"] is False
    assert (message.meta or {})["auto_reason"] == "enviado pelo nosso próprio endereço"
