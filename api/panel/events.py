"""`GET /painel/events`: the live events of /api/v1/events for a browser holding a panel
session (api/notifications/stream.py), with `event: ready` once the subscription is live."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from api.analysts.models import SessionKind
from api.notifications.stream import event_stream_response
from api.panel.auth import PANEL_PREFIX, PanelAnalyst, read_session
from api.web.streams import session_check

router = APIRouter(prefix=PANEL_PREFIX, include_in_schema=False)


@router.get("/events")
async def panel_events(request: Request, analyst: PanelAnalyst) -> EventSourceResponse:
    """The stream ends soon after the panel session does."""
    panel_session = read_session(request)
    assert panel_session is not None  # PanelAnalyst let the request through
    is_live = session_check(
        session_id=panel_session.session_id, analyst_id=analyst.id, kind=SessionKind.PANEL
    )
    return event_stream_response(is_live=is_live, announce_ready=True)
