"""The analyst panel's pages under /painel, one module per screen: login.py, inbox.py,
conversation.py, case.py (files.py serves attachments, events.py the live stream).

Server-rendered (Jinja2, autoescaped) with HTMX for the live parts. Routes stay thin: they read
through the read models (api/handoff/inbox.py, api/conversations/views.py, api/cases/views.py),
change state through the handoff, template and case services, and render what those return; no
SQL in api/panel/ (tests/unit/test_panel_layout.py holds that). Every POST carries the
session's CSRF token (`auth.PanelWriter`) and answers with a redirect (PRG); errors from the
services become a pt-BR error page (api/panel/errors.py).
"""

from __future__ import annotations

from fastapi import APIRouter

from api.panel import (
    alerts_screens,
    case,
    conversation,
    inbox,
    login,
    mailboxes_screens,
    metrics_screens,
    numbers_screens,
    outreach_screens,
    rules_screens,
    workspace_screens,
)

router = APIRouter()
for screen in (
    login,
    inbox,
    conversation,
    case,
    alerts_screens,
    rules_screens,
    outreach_screens,
    metrics_screens,
    workspace_screens,
    numbers_screens,
    mailboxes_screens,
):
    router.include_router(screen.router)
