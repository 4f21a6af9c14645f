"""Login attempt limits: per account and per client address, over a sliding window.

Before the password is checked, the attempt is admitted and recorded in one atomic step: every
limit is checked and, only if none is used up, the attempt is counted against all of them. So
of N concurrent attempts exactly as many as the limit allows reach the password check (a
check-then-record scheme lets a burst slip between the two). A refused attempt is not counted,
so the lock lifts exactly when the oldest failures leave the window (Retry-After says when). A
successful login takes its own attempt back and clears the account's failures.

Two stores with the same semantics: Redis sorted sets checked and written by one Lua script
(REDIS_URL set: shared by every replica), or rows in the database written in the login
request's own transaction, attempts on one key serialized by a transaction-scoped lock
(PostgreSQL advisory lock; SQLite transactions here begin IMMEDIATE: one writer). With the
database store the request must commit a failed login (answer the 401 without raising). Keys
are digests of the scope and the value, never the raw e-mail or address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import LoginAttempt
from api.config import LoginLimitSettings, get_settings
from api.errors import TooManyRequests

REDIS_PREFIX = "tratativa:login:"


class LoginThrottled(TooManyRequests):
    code = "too_many_login_attempts"


@dataclass(frozen=True)
class Admission:
    """Either the attempt was counted (`tokens`, one per key, to take it back) or it was
    refused and may be retried in `retry_after` seconds."""

    tokens: list[tuple[str, str]] | None
    retry_after: float = 0.0


def _retry_after(times: Sequence[float], limit: int, *, now: float, window: float) -> float:
    """Seconds until enough of `times` (oldest first, all in the window) have left it for one
    more attempt to fit under `limit`; 0 when it fits now."""
    if len(times) < limit:
        return 0.0
    return max(times[len(times) - limit] + window - now, 0.001)


class AttemptStore(Protocol):
    async def admit(
        self,
        session: AsyncSession,
        checks: Sequence[tuple[str, int]],
        *,
        now: float,
        window: float,
    ) -> Admission:
        """Count an attempt against every (key, limit), or against none if any is used up."""
        ...

    async def remove(self, session: AsyncSession, key: str, token: str) -> None: ...

    async def clear(self, session: AsyncSession, key: str) -> None: ...


# KEYS: the sorted sets; ARGV: now, window (seconds), token, then one limit per key.
# Returns {1, ""} when counted, {0, "<retry after, seconds>"} when refused.
_ADMIT_SCRIPT = """
local now, window, token = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local retry = 0
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local limit = tonumber(ARGV[3 + i])
  local n = redis.call('ZCARD', key)
  if n >= limit then
    local nth = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    retry = math.max(retry, tonumber(nth[2]) + window - now, 0.001)
  end
end
if retry > 0 then
  return {0, tostring(retry)}
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, token)
  redis.call('PEXPIRE', key, math.ceil(window * 1000))
end
return {1, ''}
"""


class RedisAttemptStore:
    """One sorted set per key (member: attempt token, score: time), checked and written by one
    script, so concurrent attempts from every replica are admitted one at a time."""

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX) -> None:
        from redis.asyncio import Redis

        self._redis: Any = Redis.from_url(url)
        self._prefix = prefix
        self._admit = self._redis.register_script(_ADMIT_SCRIPT)

    async def admit(
        self,
        session: AsyncSession,
        checks: Sequence[tuple[str, int]],
        *,
        now: float,
        window: float,
    ) -> Admission:
        token = secrets.token_hex(8)
        counted, retry = await self._admit(
            keys=[self._prefix + key for key, _limit in checks],
            args=[repr(now), repr(window), token, *(limit for _key, limit in checks)],
        )
        if int(counted) != 1:
            return Admission(tokens=None, retry_after=float(retry))
        return Admission(tokens=[(key, token) for key, _limit in checks])

    async def remove(self, session: AsyncSession, key: str, token: str) -> None:
        await self._redis.zrem(self._prefix + key, token)

    async def clear(self, session: AsyncSession, key: str) -> None:
        await self._redis.delete(self._prefix + key)

    async def close(self) -> None:
        await self._redis.aclose()


# Rows of keys never tried again are swept a few at a time by later attempts.
_SWEEP_BATCH = 100


class DatabaseAttemptStore:
    """Rows in `login_attempts`, in the caller's transaction."""

    async def admit(
        self,
        session: AsyncSession,
        checks: Sequence[tuple[str, int]],
        *,
        now: float,
        window: float,
    ) -> Admission:
        at = dt.datetime.fromtimestamp(now, dt.UTC)
        since = at - dt.timedelta(seconds=window)
        postgres = session.get_bind().dialect.name == "postgresql"
        stale = sa.select(LoginAttempt.id).where(LoginAttempt.attempted_at <= since)
        stale = stale.limit(_SWEEP_BATCH)
        if postgres:
            stale = stale.with_for_update(skip_locked=True)
        await session.execute(
            sa.delete(LoginAttempt).where(LoginAttempt.id.in_(stale.scalar_subquery()))
        )
        retry = 0.0
        # Always the same order (account, then address): two logins never wait on each other
        # in a cycle.
        for key, limit in checks:
            if postgres:
                # Held until the transaction ends: the attempts on one key are admitted one
                # at a time, each seeing every earlier one.
                await session.execute(sa.select(sa.func.pg_advisory_xact_lock(int(key[:15], 16))))
            times = await session.scalars(
                sa.select(LoginAttempt.attempted_at)
                .where(LoginAttempt.key == key, LoginAttempt.attempted_at > since)
                .order_by(LoginAttempt.attempted_at)
            )
            stamps = [t.timestamp() for t in times]
            retry = max(retry, _retry_after(stamps, limit, now=now, window=window))
        if retry > 0:
            return Admission(tokens=None, retry_after=retry)
        rows = [LoginAttempt(key=key, attempted_at=at) for key, _limit in checks]
        session.add_all(rows)
        await session.flush()
        return Admission(tokens=[(row.key, str(row.id)) for row in rows])

    async def remove(self, session: AsyncSession, key: str, token: str) -> None:
        await session.execute(
            sa.delete(LoginAttempt).where(LoginAttempt.id == int(token), LoginAttempt.key == key)
        )

    async def clear(self, session: AsyncSession, key: str) -> None:
        await session.execute(sa.delete(LoginAttempt).where(LoginAttempt.key == key))


def _digest(scope: str, value: str) -> str:
    return hashlib.sha256(f"{scope}\x00{value}".encode()).hexdigest()


def account_key(email: str) -> str:
    return _digest("account", email.strip().lower())


def address_key(address: str) -> str:
    return _digest("address", address.strip().lower())


@dataclass
class Attempt:
    """An attempt that got through the limits: pass it back with the outcome."""

    account: str
    tokens: list[tuple[str, str]] = field(default_factory=list)


def _minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return "1 minuto" if minutes == 1 else f"{minutes} minutos"


class LoginThrottle:
    def __init__(self, store: AttemptStore, limits: LoginLimitSettings) -> None:
        self.store = store
        self.limits = limits

    async def begin(
        self, session: AsyncSession, *, email: str, address: str, now: float | None = None
    ) -> Attempt:
        """Count an attempt for this account and address, or raise LoginThrottled (counted
        for neither) when either has used up its failures in the window."""
        now = time.time() if now is None else now
        account = account_key(email)
        checks = [
            (key, limit)
            for key, limit in (
                (account, self.limits.max_failures_per_account),
                (address_key(address), self.limits.max_failures_per_address),
            )
            if limit > 0
        ]
        if not checks:
            return Attempt(account=account)
        admission = await self.store.admit(
            session, checks, now=now, window=float(self.limits.window_seconds)
        )
        if admission.tokens is None:
            seconds = max(1, math.ceil(admission.retry_after))
            raise LoginThrottled(
                "Muitas tentativas de login sem sucesso. Por segurança, o acesso foi bloqueado "
                f"temporariamente: tente de novo em {_minutes(seconds)}.",
                retry_after=seconds,
            )
        return Attempt(account=account, tokens=admission.tokens)

    async def succeeded(self, session: AsyncSession, attempt: Attempt) -> None:
        """The password was right: the attempt does not count, the account starts afresh."""
        for key, token in attempt.tokens:
            await self.store.remove(session, key, token)
        await self.store.clear(session, attempt.account)


@lru_cache(maxsize=1)
def get_login_throttle() -> LoginThrottle:
    settings = get_settings()
    store: AttemptStore = (
        RedisAttemptStore(settings.redis_url) if settings.redis_url else DatabaseAttemptStore()
    )
    return LoginThrottle(store, settings.login_limit)
