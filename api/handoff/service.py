"""Requesting, claiming, releasing and resolving human attention on a conversation.

Every step lands on the case timeline with who did it and emits its handoff event; the
event's consumers tell analysts' browsers and keep Rasa paused exactly while a person holds the
conversation (api/engine/commands.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, Role
from api.cases.models import Case
from api.cases.service import require_case
from api.conversations.models import AuthorKind, Channel, Conversation, Holder, Message
from api.conversations.outbound import OutboundAttachment, OutboundMessage, do_queue_message
from api.db import utcnow
from api.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events import kinds as ev
from api.handoff.permissions import check_can_write
from api.templates.service import do_send_template
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry


def analyst_actor(analyst: Analyst) -> Actor:
    return Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)


async def do_request_handoff(
    session: AsyncSession, *, conversation: Conversation, reason: str, actor: Actor
) -> bool:
    """Put the conversation in the human queue; False when a person already has or awaits it."""
    if conversation.holder is not Holder.BOT:
        return False
    conversation.holder = Holder.WAITING_HUMAN
    conversation.handoff_reason = reason[:200]
    conversation.handoff_at = utcnow()
    await create_entry(
        session,
        kind=EntryKind.HANDOFF,
        actor=actor,
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        summary=f"Encaminhado para atendimento humano: {reason}",
        data={"reason": reason, "holder": str(Holder.WAITING_HUMAN)},
    )
    emit(
        session, ev.HandoffRequested(**about(conversation=conversation, actor=actor), reason=reason)
    )
    return True


async def require_conversation(
    session: AsyncSession, *, conversation_id: int, lock: bool = False
) -> Conversation:
    """The conversation (locked for update with `lock`), or NotFound."""
    query = sa.select(Conversation).where(Conversation.id == conversation_id)
    if lock:
        query = query.with_for_update()
    conversation = await session.scalar(query)
    if conversation is None:
        raise NotFound(f"Conversa {conversation_id} não encontrada.")
    return conversation


async def do_claim(
    session: AsyncSession,
    *,
    conversation_id: int,
    analyst: Analyst,
    assign_to: Analyst | None = None,
) -> Conversation:
    """Take a conversation (one analyst at a time); a supervisor may (re)assign it."""
    conversation = await require_conversation(session, conversation_id=conversation_id, lock=True)
    target = assign_to or analyst
    if (
        assign_to is not None
        and assign_to.id != analyst.id
        and not analyst.has_role(Role.SUPERVISOR)
    ):
        raise PermissionDenied("Somente supervisores atribuem conversas a outros analistas.")
    taken_by_other = conversation.holder is Holder.HUMAN and conversation.analyst_id not in (
        None,
        target.id,
    )
    if taken_by_other and not analyst.has_role(Role.SUPERVISOR):
        raise Conflict("Esta conversa já foi assumida por outro analista.")
    if conversation.holder is Holder.HUMAN and conversation.analyst_id == target.id:
        return conversation
    previous = conversation.analyst_id
    was_bot = conversation.holder is Holder.BOT
    conversation.holder = Holder.HUMAN
    conversation.analyst_id = target.id
    if conversation.handoff_at is None or was_bot:
        conversation.handoff_at = utcnow()
        conversation.handoff_reason = conversation.handoff_reason or "assumida por analista"
    summary = (
        f"Conversa assumida por {target.name}."
        if target.id == analyst.id
        else f"Conversa atribuída a {target.name} por {analyst.name}."
    )
    await create_entry(
        session,
        kind=EntryKind.HANDOFF,
        actor=analyst_actor(analyst),
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        summary=summary,
        data={"holder": "human", "analyst_id": target.id, "previous_analyst_id": previous},
    )
    emit(
        session,
        ev.HandoffClaimed(
            **about(conversation=conversation, actor=analyst_actor(analyst)),
            analyst_id=target.id,
            previous_analyst_id=previous,
        ),
    )
    return conversation


async def do_release(
    session: AsyncSession, *, conversation_id: int, analyst: Analyst, note: str | None = None
) -> Conversation:
    """Back to the bot, which resumes from the case as it now is (status, agreed terms)."""
    conversation = await require_conversation(session, conversation_id=conversation_id, lock=True)
    if conversation.holder is Holder.BOT:
        raise Conflict("A conversa já está com o bot.")
    if conversation.holder is Holder.HUMAN:
        check_can_write(conversation, analyst)
    conversation.holder = Holder.BOT
    conversation.analyst_id = None
    conversation.handoff_reason = None
    conversation.handoff_at = None
    await create_entry(
        session,
        kind=EntryKind.HANDOFF,
        actor=analyst_actor(analyst),
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        summary="Conversa devolvida ao bot." + (f" {note}" if note else ""),
        data={"holder": "bot", "note": note},
    )
    emit(
        session,
        ev.HandoffReleased(
            **about(conversation=conversation, actor=analyst_actor(analyst)), note=note
        ),
    )
    return conversation


async def do_resolve(
    session: AsyncSession, *, conversation_id: int, analyst: Analyst, note: str | None = None
) -> Conversation:
    """Close the conversation; the infringer's next message opens a new one."""
    conversation = await require_conversation(session, conversation_id=conversation_id, lock=True)
    if conversation.closed_at is not None:
        raise Conflict("A conversa já foi encerrada.")
    if conversation.holder is Holder.HUMAN:
        check_can_write(conversation, analyst)
    conversation.closed_at = utcnow()
    conversation.holder = Holder.BOT
    conversation.analyst_id = None
    await create_entry(
        session,
        kind=EntryKind.HANDOFF,
        actor=analyst_actor(analyst),
        case_id=conversation.case_id,
        conversation_id=conversation.id,
        summary="Conversa encerrada." + (f" {note}" if note else ""),
        data={"resolved": True, "note": note},
    )
    emit(
        session,
        ev.HandoffResolved(
            **about(conversation=conversation, actor=analyst_actor(analyst)), note=note
        ),
    )
    return conversation


async def do_add_note(
    session: AsyncSession,
    *,
    analyst: Analyst,
    text: str,
    conversation: Conversation | None = None,
    case: Case | None = None,
) -> None:
    if not text.strip():
        raise ValidationFailed("A nota está vazia.")
    actor = analyst_actor(analyst)
    entry = await create_entry(
        session,
        kind=EntryKind.NOTE,
        actor=actor,
        case_id=case.id if case else conversation.case_id if conversation else None,
        conversation_id=conversation.id if conversation else None,
        summary=text.strip()[:4000],
        data={"note": True},
    )
    emit(
        session,
        ev.NoteAdded(
            **about(conversation=conversation, case_id=entry.case_id, actor=actor),
            timeline_entry_id=entry.id,
        ),
    )


async def do_send_analyst_message(
    session: AsyncSession,
    *,
    conversation_id: int,
    analyst: Analyst,
    text: str | None = None,
    template: str | None = None,
    variables: dict[str, str] | None = None,
    attachments: Sequence[OutboundAttachment] = (),
) -> Message:
    """An analyst's reply on the conversation's own channel, through the outbox (API and panel
    both come here): only the holder or a supervisor; the WhatsApp window applies."""
    conversation = await require_conversation(session, conversation_id=conversation_id, lock=True)
    check_can_write(conversation, analyst)
    actor = analyst_actor(analyst)
    if template:
        if conversation.case_id is None:
            raise ValidationFailed("Modelos precisam de uma conversa vinculada a um caso.")
        case = await require_case(session, case_id=conversation.case_id)
        message = await do_send_template(
            session,
            conversation=conversation,
            case=case,
            name=template,
            actor=actor,
            overrides=variables,
        )
    else:
        if not (text and text.strip()) and not attachments:
            raise ValidationFailed("Escreva a mensagem ou escolha um modelo.")
        text = (text or "").strip()
        queued = await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(
                author=AuthorKind.ANALYST,
                texts=(text,),
                author_name=analyst.name,
                attachments=tuple(attachments),
            ),
            actor=actor,
        )
        message = queued[0]
    return message


@dataclass(frozen=True)
class QueuedConversation:
    """The columns of a queued conversation the queue shows: plain values, not an ORM entity
    (the waiting queue lists up to 200 rows; loading entities cost more than the query)."""

    id: int
    case_id: int | None
    channel: Channel
    address: str
    holder: Holder
    handoff_reason: str | None
    analyst_id: int | None
    handoff_at: dt.datetime | None


@dataclass(frozen=True)
class QueueItem:
    conversation: QueuedConversation
    case_reference: str | None
    brand: str | None
    analyst_name: str | None
    waiting_seconds: int


async def get_handoffs(
    session: AsyncSession,
    *,
    state: str,
    analyst: Analyst,
    channel: Channel | None = None,
    brand_id: int | None = None,
    limit: int = 200,
) -> Sequence[QueueItem]:
    """waiting: oldest first; mine: held by me; held: held by anyone (supervisor view)."""
    from api.brands.models import Brand

    query = (
        sa.select(
            Conversation.id,
            Conversation.case_id,
            Conversation.channel,
            Conversation.address,
            Conversation.holder,
            Conversation.handoff_reason,
            Conversation.analyst_id,
            Conversation.handoff_at,
            Case.reference,
            Brand.name,
            Analyst.name,
        )
        .outerjoin(Case, Case.id == Conversation.case_id)
        .outerjoin(Brand, Brand.id == Case.brand_id)
        .outerjoin(Analyst, Analyst.id == Conversation.analyst_id)
        .where(Conversation.closed_at.is_(None))
    )
    if state == "waiting":
        query = query.where(Conversation.holder == Holder.WAITING_HUMAN)
    elif state == "mine":
        query = query.where(
            Conversation.holder == Holder.HUMAN, Conversation.analyst_id == analyst.id
        )
    elif state == "held":
        query = query.where(Conversation.holder == Holder.HUMAN)
    else:
        raise ValidationFailed("state deve ser waiting, mine ou held.")
    if channel is not None:
        query = query.where(Conversation.channel == channel)
    if brand_id is not None:
        query = query.where(Case.brand_id == brand_id)
    query = query.order_by(Conversation.handoff_at.asc().nulls_last(), Conversation.id).limit(limit)
    now = utcnow()
    rows = (await session.execute(query)).all()
    return [
        QueueItem(
            conversation=QueuedConversation(*row[:8]),
            case_reference=row[8],
            brand=row[9],
            analyst_name=row[10],
            waiting_seconds=int((now - (row[7] or now)) / dt.timedelta(seconds=1)),
        )
        for row in rows
    ]
