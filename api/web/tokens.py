"""Signed, expiring bearer tokens for the API (HS256 JWT keyed by SECRET_KEY)."""

from __future__ import annotations

import datetime as dt

import jwt

from api.config import get_settings

_ALGORITHM = "HS256"


def create_token(analyst_id: int, *, ttl: dt.timedelta | None = None) -> str:
    settings = get_settings()
    now = dt.datetime.now(dt.UTC)
    payload = {
        "sub": str(analyst_id),
        "iat": now,
        "exp": now + (ttl or dt.timedelta(minutes=settings.token_ttl_minutes)),
    }
    return jwt.encode(payload, settings.secret_key.get_secret_value(), algorithm=_ALGORITHM)


def read_token(token: str) -> int | None:
    """The analyst id in a valid token, or None when it is forged, malformed or expired."""
    try:
        payload = jwt.decode(
            token, get_settings().secret_key.get_secret_value(), algorithms=[_ALGORITHM]
        )
        return int(payload["sub"])
    except (jwt.PyJWTError, KeyError, ValueError):
        return None
