"""`tratativa mailboxes` as an operator runs it: add a Gmail mailbox (secrets by variable name),
sync it from the simulator, list it. (Few calls: each starts the whole CLI; operator errors go
through the CLI's one error handler, tested in test_cli_errors.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from api.channels.mailboxes.models import Mailbox, MailboxState
from api.db import unit_of_work, utcnow
from api.devtools.gmail_simulator import GmailState, ServerThread, create_app
from tests.integration.email_servers import make_mail

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TRATATIVA = Path(sys.executable).parent / "tratativa"


@pytest.fixture(scope="module")
def gmail() -> Iterator[tuple[GmailState, str]]:
    state = GmailState()
    with ServerThread(create_app(state)) as server:
        yield state, server.url


@pytest.fixture(scope="module", autouse=True)
async def _disable_this_modules_mailboxes(database_url: str) -> AsyncIterator[None]:
    """The simulator stops with this module: its mailboxes are disabled so a worker sharing the
    database (the e2e stack) does not keep polling a dead port."""
    started = utcnow()
    yield
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Mailbox)
            .where(Mailbox.created_at >= started)
            .values(state=MailboxState.DISABLED)
        )


def tratativa(*args: str, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TRATATIVA), "mailboxes", *args],
        env={**os.environ, "DATABASE_URL": database_url, "COLUMNS": "250", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_add_sync_list(gmail: tuple[GmailState, str], database_url: str) -> None:
    state, url = gmail
    t = uuid.uuid4().hex[:8]
    address = f"cli-{t}@firma.example"
    refresh = state.add_account(address, client_id=f"cid-{t}", client_secret="s3cr3t")
    state.deliver(
        address,
        make_mail(sender=f"v-{t}@loja.example", subject="Oi", body="Oi.", message_id=f"c-{t}@x"),
    )
    env = {"CLI_GMAIL_SECRET": "s3cr3t", "CLI_GMAIL_REFRESH": refresh}

    added = tratativa(
        "add", "gmail", f"cli-{t}", address, "--client-id", f"cid-{t}",
        "--client-secret-env", "CLI_GMAIL_SECRET", "--refresh-token-env", "CLI_GMAIL_REFRESH",
        "--token-uri", f"{url}/token", "--api-base-url", f"{url}/",
        database_url=database_url, **env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert f"caixa cli-{t} (gmail, {address}) cadastrada" in added.stdout

    synced = tratativa("sync", f"cli-{t}", database_url=database_url, **env)
    assert synced.returncode == 0, synced.stderr
    assert f"cli-{t}: 1 novos, 0 repetidos, 0 devoluções" in synced.stdout

    listed = tratativa("list", database_url=database_url, **env)
    assert listed.returncode == 0
    row = next(line for line in listed.stdout.splitlines() if f"cli-{t}" in line)
    assert "gmail" in row and "active" in row and "s3cr3t" not in listed.stdout
    assert refresh not in listed.stdout
