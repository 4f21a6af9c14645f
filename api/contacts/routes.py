"""`/api/v1/contacts`: the unmatched queue and lifting an opt-out."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, Field

from api.contacts.models import ContactKind
from api.contacts.service import do_lift_opt_out, get_unmatched_contacts
from api.handoff.service import analyst_actor
from api.web.deps import CurrentAnalyst, SessionDep
from api.web.params import PathId

router = APIRouter(prefix="/api/v1/contacts", tags=["contacts"])


class ContactOut(BaseModel):
    id: int
    kind: ContactKind
    value: str
    infringer_id: int | None
    opted_out_at: dt.datetime | None


class LiftIn(BaseModel):
    reason: str = Field(min_length=3, max_length=200)


@router.get("/unmatched")
async def unmatched(session: SessionDep, _analyst: CurrentAnalyst) -> list[ContactOut]:
    return [
        ContactOut(
            id=c.id,
            kind=c.kind,
            value=c.value,
            infringer_id=c.infringer_id,
            opted_out_at=c.opted_out_at,
        )
        for c in await get_unmatched_contacts(session)
    ]


@router.post("/{contact_id}/lift-opt-out")
async def lift_opt_out(
    session: SessionDep, analyst: CurrentAnalyst, contact_id: PathId, body: LiftIn
) -> ContactOut:
    contact = await do_lift_opt_out(
        session, contact_id=contact_id, actor=analyst_actor(analyst), reason=body.reason
    )
    return ContactOut(
        id=contact.id,
        kind=contact.kind,
        value=contact.value,
        infringer_id=contact.infringer_id,
        opted_out_at=contact.opted_out_at,
    )
