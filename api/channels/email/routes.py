"""The unmatched e-mail queue for analysts: list with ranked suggestions, confirm, reject."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.conversations.models import Channel
from api.ids import StrictId
from api.inbox.unmatched import (
    UnmatchedMessage,
    do_confirm_suggestion,
    do_reject_suggestion,
    get_unmatched_messages,
)
from api.web.deps import CurrentAnalyst, SessionDep
from api.web.params import Offset, PathId

router = APIRouter(prefix="/api/v1/email", tags=["email"])


class SuggestionOut(BaseModel):
    case_id: int
    reference: str
    score: float
    rule: str
    reason: str


class UnmatchedOut(BaseModel):
    message_id: int
    conversation_id: int
    sender: str
    sender_name: str | None
    subject: str | None
    text: str
    received_at: dt.datetime
    answerable: bool
    email_kind: str | None
    attachments: int
    suggestions: list[SuggestionOut]


class UnmatchedPage(BaseModel):
    items: list[UnmatchedOut]


class CaseChoice(BaseModel):
    case_id: StrictId


class ConfirmOut(BaseModel):
    message_id: int
    conversation_id: int
    case_id: int


def _out(item: UnmatchedMessage) -> UnmatchedOut:
    meta = item.message.meta or {}
    return UnmatchedOut(
        message_id=item.message.id,
        conversation_id=item.conversation.id,
        sender=item.conversation.address,
        sender_name=meta.get("from_name"),
        subject=item.message.subject,
        text=item.message.text[:2000],
        received_at=item.message.created_at,
        answerable=bool(meta.get("answerable", True)),
        email_kind=meta.get("email_kind"),
        attachments=len(item.message.attachments),
        suggestions=[
            SuggestionOut(
                case_id=s.case_id,
                reference=s.reference,
                score=s.score,
                rule=s.rule,
                reason=s.reason,
            )
            for s in item.suggestions
        ],
    )


@router.get("/unmatched")
async def list_unmatched(
    session: SessionDep,
    _analyst: CurrentAnalyst,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Offset = 0,
) -> UnmatchedPage:
    items = await get_unmatched_messages(session, channel=Channel.EMAIL, limit=limit, offset=offset)
    return UnmatchedPage(items=[_out(item) for item in items])


@router.post("/unmatched/{message_id}/confirm")
async def confirm_suggestion(
    session: SessionDep, analyst: CurrentAnalyst, message_id: PathId, body: CaseChoice
) -> ConfirmOut:
    conversation = await do_confirm_suggestion(
        session, channel=Channel.EMAIL, message_id=message_id, case_id=body.case_id, analyst=analyst
    )
    return ConfirmOut(message_id=message_id, conversation_id=conversation.id, case_id=body.case_id)


@router.post("/unmatched/{message_id}/reject", status_code=204)
async def reject_suggestion(
    session: SessionDep, analyst: CurrentAnalyst, message_id: PathId, body: CaseChoice
) -> None:
    await do_reject_suggestion(
        session, channel=Channel.EMAIL, message_id=message_id, case_id=body.case_id, analyst=analyst
    )
