"""Requesting a human: the conversation waits for an analyst, with the reason on the timeline."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from api.conversations.models import Conversation, Holder
from api.db import utcnow
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry


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
    return True
