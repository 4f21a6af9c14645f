"""What an analyst changes on the case page beyond its status: follow-up day, tags, and
starting a conversation with one of the infringer's addresses."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst
from api.cases.models import Case, Listing, ListingStatus
from api.cases.service import do_set_listing_status
from api.cases.tags import CaseTag, parse_tags
from api.contacts.models import ContactPoint
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import get_composer
from api.conversations.service import create_conversation, do_link_conversation
from api.errors import Conflict, NotFound, ValidationFailed
from api.handoff.service import analyst_actor, do_claim
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry


async def do_set_case_follow_up(
    session: AsyncSession, *, case: Case, day: dt.date | None, actor: Actor
) -> Case:
    case.follow_up_on = day
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        summary=(
            f"Acompanhamento do caso marcado para {day:%d/%m/%Y}."
            if day is not None
            else "Acompanhamento do caso desmarcado."
        ),
        data={"follow_up_on": day.isoformat() if day else None},
    )
    await session.flush()
    return case


async def do_set_case_tags(
    session: AsyncSession, *, case: Case, raw: str, actor: Actor
) -> list[str]:
    """Replace the case's tags with those typed (comma-separated); the change is on the
    timeline."""
    wanted = parse_tags(raw)
    if len(wanted) > 20:
        raise ValidationFailed("No máximo 20 etiquetas por caso.")
    current = {
        t.tag: t
        for t in await session.scalars(sa.select(CaseTag).where(CaseTag.case_id == case.id))
    }
    added = [t for t in wanted if t not in current]
    removed = [t for t in current if t not in wanted]
    for tag in removed:
        await session.delete(current[tag])
    for tag in added:
        session.add(CaseTag(case_id=case.id, tag=tag))
    if added or removed:
        parts = []
        if added:
            parts.append("adicionadas: " + ", ".join(added))
        if removed:
            parts.append("removidas: " + ", ".join(removed))
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=actor,
            case_id=case.id,
            summary="Etiquetas " + "; ".join(parts) + ".",
            data={"tags_added": added, "tags_removed": removed},
        )
    await session.flush()
    return wanted


def channel_for_contact(contact: ContactPoint) -> Channel | None:
    """The channel that writes to this kind of address (the channel's composer says so)."""
    for channel in Channel:
        if get_composer(channel).contact_kind == contact.kind:
            return channel
    return None


async def do_start_conversation(
    session: AsyncSession, *, case: Case, contact_id: int, analyst: Analyst
) -> Conversation:
    """Open (or reopen the open) conversation with one of the infringer's addresses on its
    channel, tied to the case and held by the analyst, who then writes on the conversation
    page (where the channel's rules apply: WhatsApp's 24-hour window, e-mail threading)."""
    contact = await session.get(ContactPoint, contact_id)
    if contact is None or contact.infringer_id != case.infringer_id:
        raise NotFound("Este contato não pertence ao infrator do caso.")
    if contact.opted_out_at is not None:
        raise Conflict(
            "Este contato pediu para não receber mensagens (opt-out) ou teve o tratamento "
            "restrito; um supervisor precisa liberá-lo antes."
        )
    channel = channel_for_contact(contact)
    if channel is None:
        raise ValidationFailed("Não há canal para escrever a este tipo de contato.")
    conversation = await create_conversation(
        session, contact=contact, channel=channel, address=contact.value, case=case
    )
    await session.flush()
    actor = analyst_actor(analyst)
    if conversation.case_id is None:
        await do_link_conversation(
            session, conversation=conversation, case=case, actor=actor, how="início pelo analista"
        )
    elif conversation.case_id != case.id:
        raise Conflict(
            "Já existe uma conversa aberta com este contato em outro caso; encerre-a antes."
        )
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        conversation_id=conversation.id,
        summary=f"Conversa iniciada por {analyst.name} com {contact.value}.",
        data={"contact_id": contact.id, "channel": str(channel)},
    )
    await do_claim(session, conversation_id=conversation.id, analyst=analyst)
    return conversation


async def do_verify_listing(
    session: AsyncSession, *, case_id: int, listing_id: int, status: str, actor: Actor, note: str
) -> Listing:
    """Record an analyst's check of a listing on the marketplace; the timeline keeps who."""
    listing = await session.get(Listing, listing_id)
    if listing is None or listing.case_id != case_id:
        raise NotFound("Anúncio não encontrado neste caso.")
    try:
        target = ListingStatus(status)
    except ValueError as exc:
        raise ValidationFailed(f"Situação desconhecida: {status!r}.") from exc
    text = f"Verificado por {actor.name}" + (f": {note.strip()}" if note.strip() else "")
    return await do_set_listing_status(
        session, listing=listing, status=target, actor=actor, note=text
    )
