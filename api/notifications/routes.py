"""`GET /api/v1/events`: Server-Sent Events for analysts (new escalations, new messages), on
the transport the panel uses too (api/notifications/stream.py)."""

from __future__ import annotations

from fastapi import APIRouter
from sse_starlette import EventSourceResponse

from api.analysts.models import SessionKind
from api.notifications.stream import event_stream_response
from api.web.deps import CurrentApiSession
from api.web.streams import session_check

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events", response_class=EventSourceResponse)
async def events(api_session: CurrentApiSession) -> EventSourceResponse:
    """Live events; the stream ends soon after the token's session is revoked."""
    is_live = session_check(
        session_id=api_session.session_id,
        analyst_id=api_session.analyst.id,
        kind=SessionKind.API,
    )
    return event_stream_response(is_live=is_live, announce_ready=False)
