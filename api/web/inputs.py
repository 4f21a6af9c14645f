"""Requests of the API and the panel refuse text with a NUL character (422), on both databases.

PostgreSQL cannot store U+0000 in a text column: a login name, a note or a search term carrying
one failed inside the driver as a 500 (a randomized schemathesis run found it on
`POST /api/v1/auth/token`). The check sits where every value is known to be used, on the way to
the database (`api.db.refuse_nul_text`): a NUL in a field the route ignores changes nothing.
The provider webhooks and the worker are not covered: a message is never refused for its text.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from api.db import refuse_nul_text

PREFIXES = ("/api/", "/painel")


class RefuseNulMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PREFIXES):
            await self.app(scope, receive, send)
            return
        token = refuse_nul_text.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            refuse_nul_text.reset(token)
