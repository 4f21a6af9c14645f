"""The unmatched queue: inbound messages whose conversation has no case yet, with the ranked
suggestions a channel's matcher stored (e-mail today, api/channels/email/matching.py), and an
analyst's confirm / reject."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from api.analysts.models import Analyst
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.cases.service import do_change_status
from api.conversations.models import Channel, Conversation, Direction, Message
from api.conversations.service import do_link_conversation
from api.db import utcnow
from api.errors import Conflict, NotFound
from api.inbox.models import MatchSuggestion, SuggestionState
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry

_ENGAGE_FROM = (CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA)


@dataclass(frozen=True)
class Suggested:
    """A case an unmatched message may belong to, and why (what a matcher hands over)."""

    case_id: int
    rule: str
    score: float
    reason: str


@dataclass(frozen=True)
class SuggestionView:
    case_id: int
    reference: str
    score: float
    rule: str
    reason: str


@dataclass(frozen=True)
class UnmatchedMessage:
    message: Message
    conversation: Conversation
    suggestions: tuple[SuggestionView, ...]


async def do_store_suggestions(
    session: AsyncSession, *, message_id: int, suggestions: Sequence[Suggested]
) -> None:
    for candidate in suggestions:
        session.add(
            MatchSuggestion(
                message_id=message_id,
                case_id=candidate.case_id,
                score=candidate.score,
                rule=candidate.rule,
                reason=candidate.reason,
            )
        )
    await session.flush()


async def get_unmatched_messages(
    session: AsyncSession, *, channel: Channel, limit: int = 50, offset: int = 0
) -> list[UnmatchedMessage]:
    """Inbound messages of `channel` whose conversation has no case yet, newest first, with
    their open suggestions."""
    rows = (
        await session.execute(
            sa.select(Message, Conversation)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(
                Message.channel == channel,
                Message.direction == Direction.INBOUND,
                Conversation.case_id.is_(None),
            )
            .order_by(Message.id.desc())
            .limit(limit)
            .offset(offset)
            .options(selectinload(Message.attachments))
        )
    ).all()
    message_ids = [message.id for message, _ in rows]
    by_message: dict[int, list[SuggestionView]] = {}
    if message_ids:
        suggestion_rows = await session.execute(
            sa.select(MatchSuggestion, Case.reference)
            .join(Case, Case.id == MatchSuggestion.case_id)
            .where(
                MatchSuggestion.message_id.in_(message_ids),
                MatchSuggestion.state == SuggestionState.SUGGESTED,
            )
            .order_by(MatchSuggestion.score.desc(), MatchSuggestion.id)
        )
        for suggestion, reference in suggestion_rows.all():
            by_message.setdefault(suggestion.message_id, []).append(
                SuggestionView(
                    case_id=suggestion.case_id,
                    reference=reference,
                    score=suggestion.score,
                    rule=suggestion.rule,
                    reason=suggestion.reason,
                )
            )
    return [
        UnmatchedMessage(message, conversation, tuple(by_message.get(message.id, ())))
        for message, conversation in rows
    ]


def _analyst_actor(analyst: Analyst) -> Actor:
    return Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)


async def _unmatched_message(
    session: AsyncSession, message_id: int, channel: Channel
) -> tuple[Message, Conversation]:
    message = await session.get(Message, message_id)
    if message is None or message.channel != channel or message.direction is not Direction.INBOUND:
        raise NotFound(f"Mensagem {message_id} não encontrada.")
    conversation = await session.get(Conversation, message.conversation_id, with_for_update=True)
    assert conversation is not None
    return message, conversation


async def do_confirm_suggestion(
    session: AsyncSession, *, channel: Channel, message_id: int, case_id: int, analyst: Analyst
) -> Conversation:
    """Tie an unmatched message's conversation (and its unmatched contact) to a case; the case
    may be one of the suggestions or any other the analyst chose."""
    message, conversation = await _unmatched_message(session, message_id, channel)
    case = await session.get(Case, case_id)
    if case is None:
        raise NotFound(f"Caso {case_id} não encontrado.")
    if conversation.case_id is not None and conversation.case_id != case.id:
        raise Conflict(
            "Esta conversa já está vinculada a outro caso.", case_id=conversation.case_id
        )
    suggestion = await session.scalar(
        sa.select(MatchSuggestion).where(
            MatchSuggestion.message_id == message.id, MatchSuggestion.case_id == case.id
        )
    )
    now = utcnow()
    if suggestion is None:
        suggestion = MatchSuggestion(
            message_id=message.id,
            case_id=case.id,
            score=1.0,
            rule="analyst",
            reason="escolhido pelo analista",
        )
        session.add(suggestion)
    suggestion.state = SuggestionState.CONFIRMED
    suggestion.decided_by = analyst.id
    suggestion.decided_at = now
    # The other open suggestions of this conversation's mail are settled by this choice.
    conversation_messages = sa.select(Message.id).where(Message.conversation_id == conversation.id)
    await session.execute(
        sa.update(MatchSuggestion)
        .where(
            MatchSuggestion.message_id.in_(conversation_messages),
            MatchSuggestion.state == SuggestionState.SUGGESTED,
            MatchSuggestion.case_id != case.id,
        )
        .values(state=SuggestionState.REJECTED, decided_by=analyst.id, decided_at=now)
        .execution_options(synchronize_session=False)
    )
    actor = _analyst_actor(analyst)
    if conversation.case_id is None:
        await do_link_conversation(
            session,
            conversation=conversation,
            case=case,
            actor=actor,
            how=f"confirmação do analista ({suggestion.reason})",
        )
    await session.execute(
        sa.update(Message)
        .where(Message.conversation_id == conversation.id, Message.case_id.is_(None))
        .values(case_id=case.id)
        .execution_options(synchronize_session=False)
    )
    message.case_id = case.id
    if case.status in _ENGAGE_FROM and (message.meta or {}).get("answerable", True):
        await do_change_status(
            session,
            case=case,
            target=CaseStatus.EM_ATENDIMENTO,
            actor=actor,
            reason="o infrator respondeu por e-mail",
        )
    await session.flush()
    return conversation


async def do_reject_suggestion(
    session: AsyncSession, *, channel: Channel, message_id: int, case_id: int, analyst: Analyst
) -> None:
    """Record that an unmatched message does not belong to a suggested case."""
    message, conversation = await _unmatched_message(session, message_id, channel)
    suggestion = await session.scalar(
        sa.select(MatchSuggestion).where(
            MatchSuggestion.message_id == message.id,
            MatchSuggestion.case_id == case_id,
            MatchSuggestion.state == SuggestionState.SUGGESTED,
        )
    )
    if suggestion is None:
        raise NotFound("Sugestão não encontrada ou já decidida.")
    suggestion.state = SuggestionState.REJECTED
    suggestion.decided_by = analyst.id
    suggestion.decided_at = utcnow()
    reference = await session.scalar(sa.select(Case.reference).where(Case.id == case_id))
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=_analyst_actor(analyst),
        conversation_id=conversation.id,
        message_id=message.id,
        summary=f"Sugestão de vínculo ao caso {reference} rejeitada ({suggestion.reason}).",
        data={"case_id": case_id, "rule": suggestion.rule, "score": suggestion.score},
    )
    await session.flush()
