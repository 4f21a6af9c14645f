"""Login limits per account and per client address, on the panel and on /api/v1/auth/token,
counted in the database and in Redis (issue 10: 30 wrong passwords in 3.7 s were all 401)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

import api.analysts.service
from api.analysts.throttle import (
    DatabaseAttemptStore,
    LoginThrottle,
    LoginThrottled,
    RedisAttemptStore,
)
from api.app import create_app
from api.config import LoginLimitSettings
from api.db import unit_of_work
from api.panel.auth import SESSION_COOKIE
from tests.factories import make_analyst
from tests.integration.test_session_revocation import csrf_of, tratativa

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

PASSWORD = "correct-horse"
WINDOW = 600
_hosts = itertools.count(1)


def limits(account: int = 3, address: int = 6) -> LoginLimitSettings:
    return LoginLimitSettings(
        max_failures_per_account=account, max_failures_per_address=address, window_seconds=WINDOW
    )


@pytest.fixture(params=["database", "redis"])
async def throttle(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LoginThrottle]:
    """The login throttle the app uses in this test: 3 failures per account, 6 per address."""
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        store: RedisAttemptStore | DatabaseAttemptStore = RedisAttemptStore(
            url, prefix=f"test:login:{uuid.uuid4().hex}:"
        )
    else:
        store = DatabaseAttemptStore()
    throttle = LoginThrottle(store, limits())
    monkeypatch.setattr(api.analysts.service, "get_login_throttle", lambda: throttle)
    yield throttle
    if isinstance(store, RedisAttemptStore):
        await store.close()


def address() -> str:
    """A client address no other test uses (the limits count per address)."""
    return f"203.0.113.{next(_hosts) % 250 + 1}-{uuid.uuid4().hex[:6]}"


def client_from(host: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(), client=(host, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def new_email() -> str:
    async with unit_of_work() as session:
        return (await make_analyst(session)).email


async def token_request(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": email, "password": password})


def assert_throttled_json(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= WINDOW
    error = response.json()["error"]
    assert error["code"] == "too_many_login_attempts"
    assert "Muitas tentativas de login" in error["message"]
    assert error["details"] == {"retry_after": retry_after}
    return retry_after


async def test_the_api_locks_an_account_after_its_failures(throttle: LoginThrottle) -> None:
    email, other = await new_email(), await new_email()
    async with client_from(address()) as client:
        for _ in range(3):
            assert (await token_request(client, email, "wrong-password")).status_code == 401
        # Now even the right password is refused: guessing goes no further.
        retry_after = assert_throttled_json(await token_request(client, email, PASSWORD))
        assert retry_after > WINDOW - 60
        assert_throttled_json(await token_request(client, email.upper(), PASSWORD))
        # Another account from the same address is not affected.
        assert (await token_request(client, other, PASSWORD)).status_code == 200
    async with client_from(address()) as elsewhere:
        # Nor does a new address help the locked account.
        assert_throttled_json(await token_request(elsewhere, email, PASSWORD))


async def test_the_api_locks_an_address_after_its_failures(throttle: LoginThrottle) -> None:
    """Spraying one password over many accounts from one address: the address is stopped."""
    emails = [await new_email() for _ in range(7)]
    host = address()
    async with client_from(host) as client:
        for email in emails[:6]:
            assert (await token_request(client, email, "wrong-password")).status_code == 401
        assert_throttled_json(await token_request(client, emails[6], PASSWORD))
    async with client_from(address()) as elsewhere:
        assert (await token_request(elsewhere, emails[6], PASSWORD)).status_code == 200


async def test_a_successful_login_clears_the_account(throttle: LoginThrottle) -> None:
    email = await new_email()
    async with client_from(address()) as client:
        for _ in range(2):
            assert (await token_request(client, email, "wrong-password")).status_code == 401
        assert (await token_request(client, email, PASSWORD)).status_code == 200
        for _ in range(3):
            assert (await token_request(client, email, "wrong-password")).status_code == 401
        assert_throttled_json(await token_request(client, email, PASSWORD))


async def test_the_panel_says_so_in_portuguese(throttle: LoginThrottle) -> None:
    email = await new_email()
    async with client_from(address()) as client:

        async def submit(password: str) -> httpx.Response:
            page = await client.get("/painel/login")
            return await client.post(
                "/painel/login",
                data={"email": email, "senha": password, "csrf_token": csrf_of(page.text)},
            )

        for _ in range(3):
            wrong = await submit("wrong-password")
            assert wrong.status_code == 401 and "E-mail ou senha incorretos." in wrong.text
        refused = await submit(PASSWORD)
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= WINDOW
        assert "Muitas tentativas de login sem sucesso" in refused.text
        assert "tente de novo em 10 minutos" in refused.text
        assert refused.headers["Content-Type"].startswith("text/html")
        assert client.cookies.get(SESSION_COOKIE, path="/painel") is None


async def attempt(throttle: LoginThrottle, email: str, host: str, now: float) -> int | None:
    """One failed attempt at `now` (committed): None when let through, else Retry-After."""
    try:
        async with unit_of_work() as session:
            await throttle.begin(session, email=email, address=host, now=now)
    except LoginThrottled as exc:
        return exc.retry_after
    return None


async def test_the_lock_lifts_as_failures_leave_the_window(throttle: LoginThrottle) -> None:
    email, host, t0 = f"{uuid.uuid4().hex}@example.com", address(), 1_900_000_000.0
    for offset in (0, 10, 20):
        assert await attempt(throttle, email, host, t0 + offset) is None
    assert await attempt(throttle, email, host, t0 + 30) == WINDOW - 30
    assert await attempt(throttle, email, host, t0 + WINDOW - 1) == 1
    # The first failure has left the window: one more try, then locked until the second leaves.
    assert await attempt(throttle, email, host, t0 + WINDOW + 0.5) is None
    assert await attempt(throttle, email, host, t0 + WINDOW + 1) == 9
    assert await attempt(throttle, email, host, t0 + 3 * WINDOW) is None


async def test_concurrent_attempts_never_pass_the_limit(throttle: LoginThrottle) -> None:
    """Fired together, only as many attempts as the limit allows get to the password check."""
    email, host, now = f"{uuid.uuid4().hex}@example.com", address(), 1_900_000_000.0
    results = await asyncio.gather(*(attempt(throttle, email, host, now) for _ in range(12)))
    assert sum(result is None for result in results) == 3
    assert all(result == WINDOW for result in results if result is not None)


async def test_a_zero_limit_is_off(throttle: LoginThrottle) -> None:
    off = LoginThrottle(throttle.store, limits(account=0, address=0))
    email, host = f"{uuid.uuid4().hex}@example.com", address()
    for second in range(8):
        assert await attempt(off, email, host, 1_900_000_000.0 + second) is None


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_LIMIT_MAX_FAILURES_PER_ACCOUNT", "7")
    monkeypatch.setenv("LOGIN_LIMIT_MAX_FAILURES_PER_ADDRESS", "70")
    monkeypatch.setenv("LOGIN_LIMIT_WINDOW_SECONDS", "120")
    assert LoginLimitSettings().model_dump() == {
        "max_failures_per_account": 7,
        "max_failures_per_address": 70,
        "window_seconds": 120,
    }


async def test_the_configured_limits_apply_and_an_operator_can_unlock() -> None:
    """No test double: the app's own throttle (the database here, as without REDIS_URL) with
    the default limits, and `tratativa users unlock` lifting an account's lock."""
    email = await new_email()
    async with client_from(address()) as client:
        for _ in range(5):
            assert (await token_request(client, email, "wrong-password")).status_code == 401
        refused = await token_request(client, email, PASSWORD)
        assert refused.status_code == 429
        assert 15 * 60 - 60 < int(refused.headers["Retry-After"]) <= 15 * 60

        code, out, err = await tratativa("users", "unlock", email.upper())
        assert (code, err) == (0, "")
        assert f"failed logins of {email} forgotten" in out
        assert (await token_request(client, email, PASSWORD)).status_code == 200
