"""The analyst panel (/painel): server-rendered pages (Jinja2 + HTMX), live by SSE.

Layout: one module per screen (login.py, inbox.py, conversation.py, case.py; routes.py gathers
them), events.py (the live stream), files.py (attachments), auth.py (sessions, CSRF),
formatting.py (labels, filters, the template environment), views.py (what a timeline row
shows), errors.py (pt-BR error pages). Pages read through read models in the domain packages
and run no SQL of their own."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install_panel(app: FastAPI) -> None:
    """Mount the panel: pages, its event stream, files, static files and its HTML error pages.
    Call after `install_error_handlers(app)` (panel errors wrap the JSON handlers)."""
    from api.panel.errors import install_panel_error_handlers
    from api.panel.events import router as events_router
    from api.panel.files import router as files_router
    from api.panel.formatting import STATIC_DIR
    from api.panel.routes import router as pages_router

    app.include_router(events_router)
    app.include_router(pages_router)
    app.include_router(files_router)
    app.mount("/painel/static", StaticFiles(directory=STATIC_DIR), name="painel_static")
    install_panel_error_handlers(app)
