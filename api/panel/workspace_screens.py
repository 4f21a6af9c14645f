"""Panel: cases list, people, templates, unmatched mail, users — one module per screen, all
included here (api/panel/routes.py includes this router)."""

from __future__ import annotations

from fastapi import APIRouter

from api.panel import cases_list, people, templates_admin, unmatched, users_admin

router = APIRouter()
for screen in (cases_list, people, templates_admin, unmatched, users_admin):
    router.include_router(screen.router)
