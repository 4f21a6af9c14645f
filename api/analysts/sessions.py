"""Server-side sessions behind panel cookies and API tokens: created at login, checked on every
request, revoked by logout, a password change or a deactivation."""

from __future__ import annotations

import datetime as dt
import secrets

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Analyst, AuthSession, SessionKind
from api.db import utcnow

# Expired rows are deleted this long after expiry (kept a little for the record).
_KEEP_EXPIRED = dt.timedelta(days=1)


async def create_auth_session(
    session: AsyncSession, *, analyst_id: int, kind: SessionKind, ttl: dt.timedelta
) -> AuthSession:
    """A new live session; its id goes into the cookie or token as `jti`."""
    now = utcnow()
    await session.execute(
        sa.delete(AuthSession).where(AuthSession.expires_at < now - _KEEP_EXPIRED)
    )
    auth_session = AuthSession(
        id=secrets.token_urlsafe(32),
        analyst_id=analyst_id,
        kind=kind,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(auth_session)
    await session.flush()
    return auth_session


async def get_session_analyst(
    session: AsyncSession, *, session_id: str, analyst_id: int, kind: SessionKind
) -> Analyst | None:
    """The active analyst of a live (not revoked, not expired) session, or None."""
    row = (
        await session.execute(
            sa.select(AuthSession, Analyst)
            .join(Analyst, Analyst.id == AuthSession.analyst_id)
            .where(
                AuthSession.id == session_id,
                AuthSession.analyst_id == analyst_id,
                AuthSession.kind == kind,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > utcnow(),
                Analyst.active.is_(True),
            )
        )
    ).first()
    return row[1] if row is not None else None


async def do_revoke_session(session: AsyncSession, *, session_id: str) -> None:
    """End one session (logout); a no-op when it is already over."""
    await session.execute(
        sa.update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def do_revoke_all_sessions(session: AsyncSession, *, analyst_id: int) -> int:
    """End every live session of an analyst, panel and API alike; how many there were."""
    result = await session.execute(
        sa.update(AuthSession)
        .where(
            AuthSession.analyst_id == analyst_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > utcnow(),
        )
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)
