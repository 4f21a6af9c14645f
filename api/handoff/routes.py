"""The handoff API (`/api/v1`): the queue, claim, reply, notes, release, resolve, case status."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, UploadFile

from api.analysts.models import Analyst
from api.cases.routes import case_detail
from api.cases.schemas import CaseDetailOut
from api.cases.service import do_change_status, require_case
from api.config import get_settings
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import OutboundAttachment, window_open_until
from api.errors import NotFound, PayloadTooLarge, ValidationFailed
from api.followups.service import do_set_follow_up
from api.handoff.schemas import (
    AttachmentOut,
    AttachmentRef,
    ClaimIn,
    ConversationOut,
    EscalateIn,
    FollowUpIn,
    HandoffOut,
    MessageIn,
    MessageOut,
    NoteIn,
    ReleaseIn,
    StatusIn,
)
from api.handoff.service import (
    analyst_actor,
    do_add_note,
    do_claim,
    do_release,
    do_request_handoff,
    do_resolve,
    do_send_analyst_message,
    get_handoffs,
    require_conversation,
)
from api.storage import blob_path, get_blob, sniff_content_type, store_blob
from api.web.deps import CurrentAnalyst, SessionDep
from api.web.params import PathId, QueryId

router = APIRouter(prefix="/api/v1", tags=["handoff"])


def _conversation_out(conversation: Conversation) -> ConversationOut:
    return ConversationOut(
        id=conversation.id,
        case_id=conversation.case_id,
        channel=conversation.channel,
        address=conversation.address,
        holder=conversation.holder,
        analyst_id=conversation.analyst_id,
        handoff_reason=conversation.handoff_reason,
        closed_at=conversation.closed_at,
        follow_up_at=conversation.follow_up_at,
        window_open_until=window_open_until(conversation),
    )


@router.get("/handoffs")
async def list_handoffs(
    session: SessionDep,
    analyst: CurrentAnalyst,
    state: Annotated[str, Query(pattern="^(waiting|mine|held)$")] = "waiting",
    channel: Channel | None = None,
    brand_id: QueryId = None,
) -> list[HandoffOut]:
    items = await get_handoffs(
        session, state=state, analyst=analyst, channel=channel, brand_id=brand_id
    )
    return [
        HandoffOut(
            conversation_id=i.conversation.id,
            case_id=i.conversation.case_id,
            case_reference=i.case_reference,
            brand=i.brand,
            channel=i.conversation.channel,
            address=i.conversation.address,
            holder=i.conversation.holder,
            reason=i.conversation.handoff_reason,
            analyst_id=i.conversation.analyst_id,
            analyst_name=i.analyst_name,
            waiting_since=i.conversation.handoff_at,
            waiting_seconds=i.waiting_seconds,
        )
        for i in items
    ]


@router.get("/conversations/{conversation_id}")
async def get_conversation(
    session: SessionDep, _analyst: CurrentAnalyst, conversation_id: PathId
) -> ConversationOut:
    return _conversation_out(await require_conversation(session, conversation_id=conversation_id))


@router.post("/conversations/{conversation_id}/claim")
async def claim(
    session: SessionDep,
    analyst: CurrentAnalyst,
    conversation_id: PathId,
    body: ClaimIn | None = None,
) -> ConversationOut:
    assign_to: Analyst | None = None
    if body is not None and body.analyst_id is not None:
        assign_to = await session.get(Analyst, body.analyst_id)
        if assign_to is None or not assign_to.active:
            raise NotFound(f"Analista {body.analyst_id} não encontrado.")
    conversation = await do_claim(
        session, conversation_id=conversation_id, analyst=analyst, assign_to=assign_to
    )
    return _conversation_out(conversation)


@router.post("/conversations/{conversation_id}/escalate")
async def escalate(
    session: SessionDep, analyst: CurrentAnalyst, conversation_id: PathId, body: EscalateIn
) -> ConversationOut:
    conversation = await require_conversation(session, conversation_id=conversation_id, lock=True)
    await do_request_handoff(
        session, conversation=conversation, reason=body.reason, actor=analyst_actor(analyst)
    )
    return _conversation_out(conversation)


@router.post("/attachments", status_code=201)
async def upload_attachment(
    _analyst: CurrentAnalyst,
    file: Annotated[UploadFile, File(json_schema_extra={"minLength": 1})],  # empty: 422
) -> AttachmentOut:
    """Store a file to attach to a message (content-addressed; sniffed type; size-limited)."""
    limit = get_settings().max_attachment_bytes
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"O arquivo excede o limite de {limit} bytes.")
    if not data:
        raise ValidationFailed("O arquivo está vazio.")
    blob = store_blob(data, file.content_type)
    return AttachmentOut(
        sha256=blob.sha256,
        filename=file.filename or "anexo",
        content_type=blob.content_type,
        size=blob.size,
    )


def _attachments(refs: list[AttachmentRef]) -> list[OutboundAttachment]:
    found = []
    for ref in refs:
        data = get_blob(ref.sha256)
        if data is None:
            raise ValidationFailed(f"Anexo {ref.sha256[:12]}… não encontrado; envie-o antes.")
        found.append(
            OutboundAttachment(
                storage_path=blob_path(ref.sha256),
                filename=ref.filename,
                content_type=sniff_content_type(data, None),
                sha256=ref.sha256,
                size=len(data),
            )
        )
    return found


@router.post("/conversations/{conversation_id}/messages", status_code=201)
async def send_message(
    session: SessionDep, analyst: CurrentAnalyst, conversation_id: PathId, body: MessageIn
) -> MessageOut:
    message = await do_send_analyst_message(
        session,
        conversation_id=conversation_id,
        analyst=analyst,
        text=body.text,
        template=body.template,
        variables=body.variables,
        attachments=_attachments(body.attachments),
    )
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        text=message.text,
        delivery_status=message.delivery_status,
    )


@router.post("/conversations/{conversation_id}/follow-up")
async def set_follow_up(
    session: SessionDep, analyst: CurrentAnalyst, conversation_id: PathId, body: FollowUpIn
) -> ConversationOut:
    """When to chase this conversation (alerts read it; e-mail ignored for N days)."""
    conversation = await require_conversation(session, conversation_id=conversation_id)
    await do_set_follow_up(
        session, conversation=conversation, when=body.at, actor=analyst_actor(analyst)
    )
    return _conversation_out(conversation)


@router.post("/conversations/{conversation_id}/notes", status_code=201)
async def add_note(
    session: SessionDep, analyst: CurrentAnalyst, conversation_id: PathId, body: NoteIn
) -> dict[str, str]:
    conversation = await require_conversation(session, conversation_id=conversation_id)
    await do_add_note(session, analyst=analyst, text=body.text, conversation=conversation)
    return {"status": "ok"}


@router.post("/conversations/{conversation_id}/release")
async def release(
    session: SessionDep,
    analyst: CurrentAnalyst,
    conversation_id: PathId,
    body: ReleaseIn | None = None,
) -> ConversationOut:
    conversation = await do_release(
        session,
        conversation_id=conversation_id,
        analyst=analyst,
        note=body.note if body else None,
    )
    return _conversation_out(conversation)


@router.post("/conversations/{conversation_id}/resolve")
async def resolve(
    session: SessionDep,
    analyst: CurrentAnalyst,
    conversation_id: PathId,
    body: ReleaseIn | None = None,
) -> ConversationOut:
    conversation = await do_resolve(
        session,
        conversation_id=conversation_id,
        analyst=analyst,
        note=body.note if body else None,
    )
    return _conversation_out(conversation)


@router.post("/cases/{case_id}/status")
async def change_status(
    session: SessionDep, analyst: CurrentAnalyst, case_id: PathId, body: StatusIn
) -> CaseDetailOut:
    case = await require_case(session, case_id=case_id)
    await do_change_status(
        session, case=case, target=body.status, actor=analyst_actor(analyst), reason=body.reason
    )
    return case_detail(case)


@router.post("/cases/{case_id}/notes", status_code=201)
async def add_case_note(
    session: SessionDep, analyst: CurrentAnalyst, case_id: PathId, body: NoteIn
) -> dict[str, str]:
    case = await require_case(session, case_id=case_id)
    await do_add_note(session, analyst=analyst, text=body.text, case=case)
    return {"status": "ok"}
