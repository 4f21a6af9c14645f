"""The app's turn scheduler: every request it serves may receive a message (the provider
webhooks) and so asks the engine's scheduler for the bot turn (api.conversations.scheduling).

Installed per request, in a context variable, not as a process global: building an app (as
tests do) must not make a message received outside any request start a bot turn.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.conversations.scheduling import TurnScheduler, turn_scheduler


class TurnSchedulerMiddleware:
    def __init__(self, app: ASGIApp, *, scheduler: TurnScheduler) -> None:
        self.app = app
        self.scheduler = scheduler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with turn_scheduler(self.scheduler):
            await self.app(scope, receive, send)
