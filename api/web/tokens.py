"""Signed, expiring bearer tokens for the API (HS256 JWT keyed by SECRET_KEY).

A token names its server-side session (`jti`, see api/analysts/sessions.py); a valid signature
alone is not enough, the session must still be live.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt

from api.config import get_settings

_ALGORITHM = "HS256"


@dataclass(frozen=True)
class TokenClaims:
    analyst_id: int
    session_id: str


def create_token(analyst_id: int, *, session_id: str, ttl: dt.timedelta | None = None) -> str:
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    payload = {
        "sub": str(analyst_id),
        "jti": session_id,
        "iat": now,
        "exp": now + (ttl or dt.timedelta(minutes=settings.token_ttl_minutes)),
    }
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=_ALGORITHM)


def read_token(token: str) -> TokenClaims | None:
    """The claims of a validly signed, unexpired token, or None (forged, malformed, expired,
    or issued before tokens named their session)."""
    try:
        payload = jwt.decode(
            token,
            get_settings().secret_key.get_secret_value(),
            algorithms=[_ALGORITHM],
            options={"require": ["sub", "jti", "exp"]},
        )
        session_id = payload["jti"]
        if not isinstance(session_id, str) or not session_id:
            return None
        return TokenClaims(analyst_id=int(payload["sub"]), session_id=session_id)
    except (jwt.PyJWTError, KeyError, ValueError, TypeError):
        return None
