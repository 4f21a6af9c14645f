"""The unmatched queue as the panel works it: every channel's unmatched inbound messages with
their ranked suggestions, confirming one (or any case the analyst names by reference), and
creating a new infringer and case from a message when none fits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.brands.models import Brand
from api.cases.models import Case
from api.cases.service import create_case
from api.contacts.models import ContactPoint, Infringer, InfringerKind
from api.conversations.models import Channel, Conversation, Direction, Message
from api.errors import Conflict, NotFound, ValidationFailed
from api.identifiers.case_ref import parse_case_ref
from api.identifiers.documents import parse_document
from api.identifiers.errors import InvalidIdentifier
from api.inbox.unmatched import (
    UnmatchedMessage,
    do_confirm_suggestion,
    do_reject_suggestion,
    get_unmatched_messages,
)
from api.timeline.models import ActorKind
from api.timeline.service import Actor

PAGE = 50


@dataclass(frozen=True)
class UnmatchedQueue:
    items: Sequence[UnmatchedMessage]
    brands: Sequence[Brand]


async def get_unmatched_queue(session: AsyncSession, *, offset: int = 0) -> UnmatchedQueue:
    """Newest first, across channels (each channel's matcher ranked the suggestions)."""
    items: list[UnmatchedMessage] = []
    for channel in Channel:
        items += await get_unmatched_messages(
            session, channel=channel, limit=PAGE + offset, offset=0
        )
    items.sort(key=lambda item: item.message.id, reverse=True)
    brands = (await session.scalars(sa.select(Brand).order_by(Brand.name))).all()
    return UnmatchedQueue(items[offset : offset + PAGE], brands)


async def _inbound(session: AsyncSession, message_id: int) -> Message:
    message = await session.get(Message, message_id)
    if message is None or message.direction is not Direction.INBOUND:
        raise NotFound(f"Mensagem {message_id} não encontrada.")
    return message


async def resolve_case_choice(session: AsyncSession, *, case_id: int | None, reference: str) -> int:
    """The case an analyst chose: a suggestion's id, or a reference typed by hand."""
    if case_id is not None:
        return case_id
    if not reference.strip():
        raise ValidationFailed("Escolha uma sugestão ou informe a referência do caso.")
    try:
        normalized = parse_case_ref(reference)
    except InvalidIdentifier as exc:
        raise ValidationFailed(
            f"Referência inválida: {reference.strip()!r} (ex.: INF-2026-000123)."
        ) from exc
    found = await session.scalar(sa.select(Case.id).where(Case.reference == normalized))
    if found is None:
        raise NotFound(f"Nenhum caso com a referência {normalized}.")
    return found


async def do_confirm_message(
    session: AsyncSession, *, message_id: int, case_id: int, analyst: Analyst
) -> Conversation:
    message = await _inbound(session, message_id)
    return await do_confirm_suggestion(
        session, channel=message.channel, message_id=message.id, case_id=case_id, analyst=analyst
    )


async def do_reject_message_suggestion(
    session: AsyncSession, *, message_id: int, case_id: int, analyst: Analyst
) -> None:
    message = await _inbound(session, message_id)
    await do_reject_suggestion(
        session, channel=message.channel, message_id=message.id, case_id=case_id, analyst=analyst
    )


async def do_create_case_from_message(
    session: AsyncSession,
    *,
    message_id: int,
    name: str,
    brand_id: int,
    document: str,
    analyst: Analyst,
) -> Case:
    """A new infringer (with the sender's address) and a new case, and the message's
    conversation tied to it — for mail that belongs to no case yet."""
    message = await _inbound(session, message_id)
    conversation = await session.get(Conversation, message.conversation_id)
    if conversation is None:
        raise NotFound(f"Mensagem {message_id} não encontrada.")
    if conversation.case_id is not None:
        raise Conflict("Esta conversa já está vinculada a um caso.")
    if not name.strip():
        raise ValidationFailed("Informe o nome do infrator.")
    brand = await session.get(Brand, brand_id)
    if brand is None:
        raise ValidationFailed("Escolha a marca do novo caso.")
    normalized: str | None = None
    kind = InfringerKind.PERSON
    if document.strip():
        try:
            parsed = parse_document(document)
        except InvalidIdentifier as exc:
            raise ValidationFailed(f"CPF/CNPJ inválido: {document.strip()!r}.") from exc
        normalized = parsed.value
        kind = InfringerKind.COMPANY if parsed.kind == "cnpj" else InfringerKind.PERSON
        existing = await session.scalar(
            sa.select(Infringer).where(Infringer.document == normalized)
        )
        if existing is not None:
            raise Conflict(
                f"Já existe um infrator com este documento ({existing.name}); "
                "vincule a mensagem a um caso dele."
            )
    contact = await session.get(ContactPoint, conversation.contact_point_id)
    if contact is not None and contact.infringer_id is not None:
        raise Conflict("O remetente já pertence a um infrator; vincule a um caso dele.")
    infringer = Infringer(kind=kind, name=" ".join(name.split())[:200], document=normalized)
    session.add(infringer)
    await session.flush()
    if contact is not None:
        contact.infringer_id = infringer.id
    actor = Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)
    case = await create_case(session, brand_id=brand.id, infringer_id=infringer.id, actor=actor)
    await do_confirm_suggestion(
        session, channel=message.channel, message_id=message.id, case_id=case.id, analyst=analyst
    )
    return case
