"""Factories that build test data through the real service functions."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.analysts.service import create_analyst
from api.brands.models import Brand
from api.brands.service import create_brand
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import create_case, do_advance_status
from api.contacts.models import ContactKind, ContactPoint, Infringer, InfringerKind
from api.contacts.service import do_identify_sender
from api.conversations.models import Channel, Conversation
from api.conversations.service import create_conversation
from api.db import utcnow
from api.identifiers.documents import cpf_check_digits
from api.timeline.service import Actor

# Explicit small numbers (valid_cpf(41)) stay free for tests that need a known document.
_seq = itertools.count(100_000)


def valid_cpf(n: int | None = None) -> str:
    first9 = f"{(n if n is not None else next(_seq)) * 7919 % 10**9:09d}"
    if len(set(first9)) == 1:
        first9 = "123456780"
    return first9 + cpf_check_digits(first9)


async def make_brand(session: AsyncSession, **overrides: object) -> Brand:
    values: dict[str, object] = {
        "name": f"Marca {next(_seq)}",
        "base_amount": Decimal("2000.00"),
        "floor_amount": Decimal("1200.00"),
        "max_installments": 6,
        "pix_key": "12345678000195",
        "payee_name": "Tratativa",
        "payee_city": "Sao Paulo",
    }
    values.update(overrides)
    return await create_brand(session, **values)  # type: ignore[arg-type]


async def make_infringer(
    session: AsyncSession,
    *,
    name: str = "Fulano de Tal",
    document: str | None = None,
    phones: tuple[str, ...] = (),
    emails: tuple[str, ...] = (),
) -> Infringer:
    infringer = Infringer(kind=InfringerKind.PERSON, name=name, document=document or valid_cpf())
    session.add(infringer)
    await session.flush()
    for phone in phones:
        session.add(ContactPoint(kind=ContactKind.PHONE, value=phone, infringer_id=infringer.id))
    for email in emails:
        session.add(ContactPoint(kind=ContactKind.EMAIL, value=email, infringer_id=infringer.id))
    await session.flush()
    return infringer


async def make_case(
    session: AsyncSession,
    *,
    brand: Brand | None = None,
    infringer: Infringer | None = None,
    status: CaseStatus = CaseStatus.DETECTADO,
    listings: tuple[str, ...] = ("https://produto.mercadolivre.com.br/MLB-1",),
) -> Case:
    brand = brand or await make_brand(session)
    infringer = infringer or await make_infringer(session)
    case = await create_case(
        session,
        brand_id=brand.id,
        infringer_id=infringer.id,
        claimed_amount=Decimal("2000.00"),
        listings=[(url, "Mercado Livre") for url in listings],
    )
    await session.flush()
    path = [
        CaseStatus.EM_TRIAGEM,
        CaseStatus.APTO_NOTIFICAR,
        CaseStatus.NOTIFICADO,
        CaseStatus.EM_ATENDIMENTO,
        CaseStatus.EM_NEGOCIACAO,
    ]
    if status in path:
        await do_advance_status(
            session,
            case=case,
            path=path[: path.index(status) + 1],
            actor=Actor.system(),
            reason="factory",
        )
    await session.refresh(case, ["listings"])
    return case


async def make_analyst(session: AsyncSession, *, role: Role = Role.ANALYST) -> Analyst:
    return await create_analyst(
        session, email=f"analyst{next(_seq)}@example.com", password="correct-horse", role=role
    )


async def make_whatsapp_conversation(
    session: AsyncSession, *, phone: str, status: CaseStatus = CaseStatus.EM_ATENDIMENTO
) -> Conversation:
    """An infringer writing from `phone`, a case of theirs in `status` and its open WhatsApp
    conversation, with the 24-hour window open (the infringer wrote an hour ago)."""
    infringer = await make_infringer(session, phones=(phone,))
    case = await make_case(session, infringer=infringer, status=status)
    found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
    conversation = await create_conversation(
        session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
    )
    conversation.last_inbound_at = utcnow() - dt.timedelta(hours=1)
    return conversation
