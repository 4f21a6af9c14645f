"""The analyst panel (/painel): server-rendered pages (Jinja2 + HTMX), live by SSE."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install_panel(app: FastAPI) -> None:
    """Mount the panel: pages, its event stream, static files and its HTML error pages.
    Call after `install_error_handlers(app)` (panel errors wrap the JSON handlers)."""
    from api.panel.auth import router as auth_router
    from api.panel.routes import STATIC_DIR, install_panel_error_handlers
    from api.panel.routes import router as pages_router

    app.include_router(auth_router)
    app.include_router(pages_router)
    app.mount("/painel/static", StaticFiles(directory=STATIC_DIR), name="painel_static")
    install_panel_error_handlers(app)
