"""The FastAPI application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import api.models  # noqa: F401  (all mappers configured before the first request)
from api.analysts.routes import router as auth_router
from api.automations.routes import router as automations_router
from api.cases.routes import router as cases_router
from api.channels.email.routes import router as email_router
from api.channels.mailboxes.routes import router as mailboxes_router
from api.channels.numbers.routes import router as numbers_router
from api.channels.whatsapp_twilio.routes import router as twilio_router
from api.config import get_settings
from api.contacts.routes import router as contacts_router
from api.engine.action_server import router as action_server_router
from api.engine.client import close_gateway
from api.engine.dispatch import BACKGROUND_TURNS, close_senders
from api.handoff.routes import router as handoff_router
from api.health.routes import router as health_router
from api.metrics.routes import router as metrics_router
from api.notifications.routes import router as events_router
from api.operations.routes import router as operations_router
from api.outreach.routes import router as outreach_router
from api.panel import install_panel
from api.public.routes import router as public_router
from api.runtime import freeze_loaded_objects, quiet_chatty_loggers, stop_with_supervisor
from api.web.errors import install_error_handlers
from api.web.inputs import RefuseNulMiddleware
from api.web.logging import install_log_redaction
from api.web.openapi import install_error_responses
from api.web.proxies import TrustedProxyMiddleware
from api.web.scheduling import TurnSchedulerMiddleware


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    # Everything loaded so far (modules, mappers, routes, templates) lives as long as the
    # process: moved out of the collector's reach, so its full collections stop rescanning it
    # under load (api.runtime).
    freeze_loaded_objects()
    stop_with_supervisor()
    yield
    await close_senders()
    await close_gateway()


def create_app() -> FastAPI:
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    quiet_chatty_loggers()
    app = FastAPI(
        title="Tratativa",
        description="CRM conversacional para proteção de marcas: casos, conversas, handoff.",
        version="0.1.0",
        docs_url="/docs",
        lifespan=_lifespan,
    )
    app.state.settings = settings
    app.add_middleware(RefuseNulMiddleware)
    # Messages received by this app's requests get their bot turn after commit.
    app.add_middleware(TurnSchedulerMiddleware, scheduler=BACKGROUND_TURNS)
    app.add_middleware(TrustedProxyMiddleware)  # added last: runs first, on the real peer
    install_error_handlers(app)
    # The hot paths first: routes are matched in order (about a hundred panel and API routes
    # are otherwise tried before them), and every WhatsApp message reaches these several times
    # (its webhook, the action server call of its turn, the status callbacks of its replies).
    app.include_router(twilio_router)
    app.include_router(action_server_router)
    install_panel(app)  # after the JSON handlers: /painel errors render as pages
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(cases_router)
    app.include_router(handoff_router)
    app.include_router(contacts_router)
    app.include_router(events_router)
    app.include_router(public_router)
    app.include_router(email_router)
    app.include_router(operations_router)
    app.include_router(automations_router)
    app.include_router(outreach_router)
    app.include_router(metrics_router)
    app.include_router(numbers_router)
    app.include_router(mailboxes_router)
    install_error_responses(app)
    return app
