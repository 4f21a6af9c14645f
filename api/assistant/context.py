"""The context of one bot turn: conversation, case, brand and the user's message."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from api.brands.models import Brand
from api.cases.lifecycle import CaseStatus, allowed_moves
from api.cases.models import Case
from api.config import Settings, get_settings
from api.conversations.models import Conversation
from api.conversations.service import conversation_id_from_sender
from api.identifiers.money import format_brl
from api.timeline.service import Actor


@dataclass(frozen=True)
class Turn:
    """The user's message as Rasa read it, and the slots the tracker holds."""

    text: str
    intent: str | None
    entities: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None

    def entity_values(self, name: str) -> list[str]:
        return [str(e["value"]) for e in self.entities if e.get("entity") == name]

    def first_amount(self) -> Decimal | None:
        """The first amount offered; one the bot's extractor marked as only mentioned
        (role "mention": "paguei 50 de frete") is not a counteroffer."""
        values = [
            str(e["value"])
            for e in self.entities
            if e.get("entity") == "amount" and e.get("role") != "mention"
        ]
        return Decimal(values[0]) if values else None

    def first_installments(self) -> int | None:
        values = self.entity_values("installments")
        return int(float(values[0])) if values else None


@dataclass
class BotContext:
    session: AsyncSession
    settings: Settings
    conversation: Conversation | None
    case: Case | None
    turn: Turn

    actor: Actor = field(default_factory=Actor.bot)

    @property
    def brand(self) -> Brand | None:
        return self.case.brand if self.case is not None else None

    def values(self) -> dict[str, str]:
        """Variables every response template may use."""
        s = self.settings
        values = {
            "firm_name": s.firm_name,
            "firm_site": s.firm_site,
            "firm_phone": s.firm_phone,
            "firm_email": s.firm_email,
        }
        case = self.case
        if case is not None:
            values.update(
                case_ref=case.reference,
                brand=case.brand.name,
                name=case.infringer.name.split()[0].title() if case.infringer.name else "",
                deadline=_date(case.response_deadline),
                notice_date=_date(case.notice_sent_at.date() if case.notice_sent_at else None),
                listings_count=str(len(case.listings)),
            )
        return values

    def can_move(self, target: CaseStatus) -> bool:
        return self.case is not None and target in allowed_moves(self.case.status)


def _date(value: dt.date | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "a definir"


def brl(value: Decimal) -> str:
    return format_brl(value)


@functools.cache
def _case_statement() -> sa.Select[Case]:
    """A case with what a turn's templates read, built once (every bot turn loads its case:
    building the statement per call cost more CPU than running it); each call binds the id.
    Its listings come in the same statement (a case has a handful: one row each), not in a
    second round trip as selectinload would."""
    return (
        sa.select(Case)
        .where(Case.id == sa.bindparam("case_id", type_=Case.id.type))
        .options(joinedload(Case.brand), joinedload(Case.infringer), joinedload(Case.listings))
    )


async def load_case(session: AsyncSession, case_id: int) -> Case | None:
    found = await session.scalars(_case_statement(), {"case_id": case_id})
    return found.unique().first()


async def load_context(session: AsyncSession, *, sender_id: str, turn: Turn) -> BotContext:
    conversation_id = conversation_id_from_sender(sender_id)
    conversation = (
        await session.get(Conversation, conversation_id, with_for_update=False)
        if conversation_id is not None
        else None
    )
    case = (
        await load_case(session, conversation.case_id)
        if conversation is not None and conversation.case_id is not None
        else None
    )
    return BotContext(
        session=session,
        settings=get_settings(),
        conversation=conversation,
        case=case,
        turn=turn,
    )
