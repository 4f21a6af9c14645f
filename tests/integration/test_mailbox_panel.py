"""The admins' mailbox page: provider, state, cursor, last error, no secret; "read now" flags the
mailbox for the runner; other roles are refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.app import create_app
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.channels.mailboxes.service import create_mailbox, do_record_failure, do_save_cursor
from api.db import unit_of_work, utcnow
from tests.integration.test_panel import csrf_of, login

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_admins_see_state_cursor_and_error_and_can_ask_for_a_read(
    client: httpx.AsyncClient,
) -> None:
    t = uuid.uuid4().hex[:8]
    async with unit_of_work() as session:
        box = await create_mailbox(
            session,
            provider=MailboxProvider.GRAPH,
            name=f"juridico-{t}",
            address=f"juridico-{t}@firma.example",
            config={"tenant": "t", "client_id": "c"},
            credentials_env={"client_secret": "GRAPH_SECRET_JURIDICO"},
        )
        box_id = box.id
        await do_save_cursor(
            session,
            mailbox_id=box_id,
            cursor="https://graph.microsoft.com/v1.0/users/x/mailFolders/inbox/messages/delta"
            "?$deltatoken=abcdefghijklmnopqrstuvwxyz0123456789",
        )
        await do_record_failure(
            session, mailbox_id=box_id, error="Throttled: Graph 429 <b>TooManyRequests</b>",
            now=utcnow(), retry_after=30,
        )  # fmt: skip

    await login(client, Role.ANALYST)
    assert (await client.get("/painel/caixas-postais")).status_code == 403

    client.cookies.clear()
    admin = await login(client, Role.ADMIN)
    page = await client.get("/painel/caixas-postais")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-caixa="juridico-{t}"') :]
    row = row[: row.index("</tr>")]
    assert "Microsoft 365 (Graph)" in row and "Aguardando o provedor" in row
    assert "deltaLink …" in row and "0123456789" in row
    assert "&lt;b&gt;TooManyRequests&lt;/b&gt;" in row  # escaped, never markup
    assert "GRAPH_SECRET_JURIDICO" in row

    sync = await client.post(
        f"/painel/caixas-postais/{box_id}/sincronizar", data={"csrf_token": csrf_of(page.text)}
    )
    assert sync.status_code == 303
    async with unit_of_work() as session:
        stored = await session.scalar(sa.select(Mailbox).where(Mailbox.id == box_id))
        assert stored is not None and stored.sync_requested_at is not None
    off = await client.post(
        f"/painel/caixas-postais/{box_id}/ativa", data={"csrf_token": admin.csrf, "ativa": "0"}
    )
    assert off.status_code == 303
    async with unit_of_work() as session:
        stored = await session.get(Mailbox, box_id)
        assert stored is not None and stored.state is MailboxState.DISABLED
