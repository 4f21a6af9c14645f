"""Panel cookies and API tokens end on the server: logout, password change, deactivation
(issue 10). Each test holds on to the old cookie or token and shows it is refused."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
import uvicorn

from api.analysts.models import Analyst, AuthSession
from api.app import create_app
from api.config import get_settings
from api.db import unit_of_work
from api.panel.auth import SESSION_COOKIE
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_analyst, make_case

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

PASSWORD = "correct-horse"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
TRATATIVA = Path(sys.executable).with_name("tratativa")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # An address of its own: the failed logins of other tests never add up to this one's.
    transport = httpx.ASGITransport(app=create_app(), client=("198.51.100.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@dataclass
class Account:
    analyst_id: int
    email: str
    case_id: int


async def new_account() -> Account:
    async with unit_of_work() as session:
        analyst = await make_analyst(session)
        case = await make_case(session)
        return Account(analyst.id, analyst.email, case.id)


def csrf_of(html: str) -> str:
    found = _CSRF_RE.search(html)
    assert found is not None, "page has no CSRF field"
    return found.group(1)


@dataclass
class PanelLogin:
    cookie: str
    csrf: str


async def panel_login(
    client: httpx.AsyncClient, account: Account, password: str = PASSWORD
) -> PanelLogin:
    client.cookies.clear()  # a second login of the same analyst: a second browser
    page = await client.get("/painel/login")
    response = await client.post(
        "/painel/login",
        data={"email": account.email, "senha": password, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code == 303, response.text
    cookie = client.cookies.get(SESSION_COOKIE, path="/painel")
    assert cookie
    page = await client.get(f"/painel/casos/{account.case_id}")
    assert page.status_code == 200
    return PanelLogin(cookie=cookie, csrf=csrf_of(page.text))


async def api_token(client: httpx.AsyncClient, account: Account, password: str = PASSWORD) -> str:
    response = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": password}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def post_note(
    client: httpx.AsyncClient, account: Account, login: PanelLogin, text: str
) -> httpx.Response:
    """A case note posted with exactly this cookie (whatever the client's jar holds now)."""
    client.cookies.clear()
    return await client.post(
        f"/painel/casos/{account.case_id}/notas",
        data={"csrf_token": login.csrf, "texto": text},
        headers={"Cookie": f"{SESSION_COOKIE}={login.cookie}"},
    )


async def notes_of(account: Account) -> list[str]:
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(TimelineEntry.summary).where(
                TimelineEntry.case_id == account.case_id, TimelineEntry.kind == EntryKind.NOTE
            )
        )
        return list(rows)


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def assert_sent_to_login(response: httpx.Response) -> None:
    assert response.status_code == 303
    assert response.headers["location"].startswith("/painel/login")


async def test_a_note_posted_with_the_old_cookie_after_logout_is_refused(
    client: httpx.AsyncClient,
) -> None:
    account = await new_account()
    login = await panel_login(client, account)
    before = await post_note(client, account, login, "antes de sair")
    assert before.status_code == 303 and before.headers["location"].endswith(
        f"/casos/{account.case_id}"
    )

    out = await client.post(
        "/painel/sair",
        data={"csrf_token": login.csrf},
        headers={"Cookie": f"{SESSION_COOKIE}={login.cookie}"},
    )
    assert out.status_code == 303 and out.headers["location"] == "/painel/login"

    after = await post_note(client, account, login, "depois de sair")
    assert_sent_to_login(after)
    assert await notes_of(account) == ["antes de sair"]


async def test_logout_ends_only_that_session(client: httpx.AsyncClient) -> None:
    account = await new_account()
    first = await panel_login(client, account)
    second = await panel_login(client, account)
    token = await api_token(client, account)

    await post_note(client, account, first, "sessão 1")
    out = await client.post(
        "/painel/sair",
        data={"csrf_token": first.csrf},
        headers={"Cookie": f"{SESSION_COOKIE}={first.cookie}"},
    )
    assert out.status_code == 303 and out.headers["location"] == "/painel/login"

    assert_sent_to_login(await post_note(client, account, first, "sessão 1 de novo"))
    assert (await post_note(client, account, second, "sessão 2")).status_code == 303
    assert (await me(client, token)).status_code == 200
    assert sorted(await notes_of(account)) == ["sessão 1", "sessão 2"]


async def test_an_api_token_is_refused_after_logout(client: httpx.AsyncClient) -> None:
    account = await new_account()
    token = await api_token(client, account)
    other = await api_token(client, account)
    assert (await me(client, token)).json()["email"] == account.email

    out = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert out.status_code == 204

    refused = await me(client, token)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "authentication_required"
    again = await client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401
    assert (await me(client, other)).status_code == 200  # another login of the same analyst


async def test_a_token_without_a_session_is_refused(client: httpx.AsyncClient) -> None:
    """Signed with the real key but naming no live session (as tokens issued before sessions
    were recorded, or a forged jti): refused."""
    account = await new_account()
    now = dt.datetime.now(dt.UTC)
    key = get_settings().secret_key.get_secret_value()
    claims = {"sub": str(account.analyst_id), "iat": now, "exp": now + dt.timedelta(hours=1)}
    legacy = jwt.encode(claims, key, algorithm="HS256")
    invented = jwt.encode({**claims, "jti": "not-a-session"}, key, algorithm="HS256")
    assert (await me(client, legacy)).status_code == 401
    assert (await me(client, invented)).status_code == 401


async def test_a_panel_cookie_is_not_an_api_token_and_back(client: httpx.AsyncClient) -> None:
    account = await new_account()
    login = await panel_login(client, account)
    token = await api_token(client, account)
    assert (await me(client, login.cookie)).status_code == 401
    client.cookies.clear()
    as_cookie = await client.get("/painel/caixa", headers={"Cookie": f"{SESSION_COOKIE}={token}"})
    assert_sent_to_login(as_cookie)


async def tratativa(*args: str) -> tuple[int, str, str]:
    env = {**os.environ, "TRATATIVA_PASSWORD": "a-new-long-password"}
    process = await asyncio.create_subprocess_exec(
        str(TRATATIVA),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


async def test_a_password_change_ends_every_cookie_and_token(client: httpx.AsyncClient) -> None:
    account = await new_account()
    login = await panel_login(client, account)
    token = await api_token(client, account)

    code, out, err = await tratativa("users", "set-password", account.email)
    assert (code, err) == (0, "")
    assert f"password changed for {account.email}; 2 session(s) ended" in out

    assert (await me(client, token)).status_code == 401
    assert_sent_to_login(await post_note(client, account, login, "com a senha antiga"))
    assert await notes_of(account) == []
    wrong = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": PASSWORD}
    )
    assert wrong.status_code == 401
    fresh = await api_token(client, account, password="a-new-long-password")
    assert (await me(client, fresh)).status_code == 200


async def test_deactivation_ends_every_cookie_and_token(client: httpx.AsyncClient) -> None:
    account = await new_account()
    login = await panel_login(client, account)
    token = await api_token(client, account)

    code, out, err = await tratativa("users", "deactivate", account.email)
    assert (code, err) == (0, "")
    assert f"deactivated {account.email}; 2 session(s) ended" in out

    assert (await me(client, token)).status_code == 401
    assert_sent_to_login(await post_note(client, account, login, "desativado"))
    assert await notes_of(account) == []
    refused = await client.post(
        "/api/v1/auth/token", data={"username": account.email, "password": PASSWORD}
    )
    assert refused.status_code == 401

    # Reactivating lets the analyst log in again; the old cookie and token stay dead.
    code, out, _ = await tratativa("users", "activate", account.email)
    assert code == 0 and f"activated {account.email}" in out
    assert (await me(client, token)).status_code == 401
    assert_sent_to_login(await post_note(client, account, login, "reativado"))
    fresh = await api_token(client, account)
    assert (await me(client, fresh)).status_code == 200
    async with unit_of_work() as session:
        live = await session.scalar(
            sa.select(sa.func.count())
            .select_from(AuthSession)
            .where(AuthSession.analyst_id == account.analyst_id, AuthSession.revoked_at.is_(None))
        )
        analyst = await session.get(Analyst, account.analyst_id)
    assert live == 1 and analyst is not None and analyst.active


async def test_user_commands_fail_in_one_line() -> None:
    code, out, err = await tratativa("users", "deactivate", "ninguem@example.com")
    assert code == 1 and out == ""
    assert err.strip().splitlines() == ["erro: Nenhum usuário com o e-mail ninguem@example.com."]

    account = await new_account()
    code, _, err = await tratativa("users", "set-password", account.email, "--password", "curta")
    assert code == 1
    assert err.strip().splitlines() == ["erro: A senha precisa de pelo menos 8 caracteres."]


@pytest.fixture
async def served(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The app on a real socket (event streams need a server that streams), with frequent
    heartbeats and a session check before every frame."""
    import api.notifications.stream
    import api.web.streams

    monkeypatch.setattr(api.web.streams, "SESSION_CHECK_SECONDS", 0.0)
    monkeypatch.setattr(api.notifications.stream, "HEARTBEAT_SECONDS", 0.05)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 15
    while not server.started:
        assert not serving.done() and time.monotonic() < deadline, "service did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(Exception):
            await serving
        sock.close()


async def read_until_closed(lines: AsyncIterator[str]) -> list[str]:
    return [line async for line in lines]


async def test_an_open_api_event_stream_ends_when_its_token_is_revoked(served: str) -> None:
    account = await new_account()
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        token = await api_token(client, account)
        auth = {"Authorization": f"Bearer {token}"}
        async with client.stream("GET", "/api/v1/events", headers=auth) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert await anext(lines) == ": connected"
            assert (await client.post("/api/v1/auth/logout", headers=auth)).status_code == 204
            rest = await asyncio.wait_for(read_until_closed(lines), timeout=5)
        assert not any(line.startswith("event:") for line in rest)


async def test_an_open_panel_event_stream_ends_at_logout(served: str) -> None:
    account = await new_account()
    async with httpx.AsyncClient(base_url=served, timeout=10) as client:
        login = await panel_login(client, account)
        cookie = {"Cookie": f"{SESSION_COOKIE}={login.cookie}"}
        client.cookies.clear()
        async with client.stream("GET", "/painel/events", headers=cookie) as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            async for line in lines:
                if line == "event: ready":
                    break
            out = await client.post("/painel/sair", data={"csrf_token": login.csrf}, headers=cookie)
            assert out.status_code == 303
            await asyncio.wait_for(read_until_closed(lines), timeout=5)
