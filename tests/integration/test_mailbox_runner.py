"""The mailbox runner: one failing or hanging mailbox never blocks the others; leases keep two
workers off one mailbox; IMAP progress migrates into the table; secrets stay out of it."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import sqlalchemy as sa

from api.channels.email.models import ImapCursor
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.channels.mailboxes.runner import run_mailboxes, sync_due
from api.channels.mailboxes.service import (
    create_mailbox,
    do_ensure_settings_mailbox,
    do_set_enabled,
)
from api.config import ImapSettings, get_settings
from api.db import unit_of_work, utcnow
from api.devtools.gmail_simulator import GmailState, ServerThread
from api.devtools.gmail_simulator import create_app as create_gmail
from api.devtools.graph_simulator import GraphState
from api.devtools.graph_simulator import create_app as create_graph
from api.errors import Conflict, NotFound, ValidationFailed
from tests.integration.email_servers import make_mail

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


@pytest.fixture(scope="module")
def sims() -> Iterator[tuple[GmailState, str, GraphState, str]]:
    gmail, graph = GmailState(), GraphState()
    with ServerThread(create_gmail(gmail)) as g, ServerThread(create_graph(graph)) as m:
        yield gmail, g.url, graph, m.url


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A server that accepts connections and never answers (a provider that hangs)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture(scope="module", autouse=True)
async def _disable_this_modules_mailboxes(database_url: str) -> AsyncIterator[None]:
    """The simulators stop with this module: its mailboxes are disabled so a worker sharing the
    database (the e2e stack) does not keep polling dead ports."""
    started = utcnow()
    yield
    async with unit_of_work() as session:
        await session.execute(
            sa.update(Mailbox)
            .where(Mailbox.created_at >= started)
            .values(state=MailboxState.DISABLED)
        )


def tag() -> str:
    return uuid.uuid4().hex[:10]


async def add_gmail(
    gmail: GmailState, url: str, monkeypatch: pytest.MonkeyPatch, *, secret: str | None = None
) -> tuple[str, str]:
    t = tag()
    address = f"g-{t}@firma.example"
    refresh = gmail.add_account(address, client_id=f"c-{t}", client_secret=f"s-{t}")
    monkeypatch.setenv(f"G_SECRET_{t.upper()}", secret or f"s-{t}")
    monkeypatch.setenv(f"G_REFRESH_{t.upper()}", refresh)
    async with unit_of_work() as session:
        await create_mailbox(
            session,
            provider=MailboxProvider.GMAIL,
            name=f"g-{t}",
            address=address,
            config={"client_id": f"c-{t}", "token_uri": f"{url}/token", "api_base_url": url},
            credentials_env={
                "client_secret": f"G_SECRET_{t.upper()}",
                "refresh_token": f"G_REFRESH_{t.upper()}",
            },
        )
    return f"g-{t}", address


async def add_graph(
    graph: GraphState, url: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    t = tag()
    address = f"m-{t}@firma.onmicrosoft.com"
    graph.add_app("tenant", f"c-{t}", f"s-{t}", [address])
    monkeypatch.setenv(f"M_SECRET_{t.upper()}", f"s-{t}")
    async with unit_of_work() as session:
        await create_mailbox(
            session,
            provider=MailboxProvider.GRAPH,
            name=f"m-{t}",
            address=address,
            config={
                "tenant": "tenant",
                "client_id": f"c-{t}",
                "api_base_url": f"{url}/v1.0",
                "login_base_url": url,
            },
            credentials_env={"client_secret": f"M_SECRET_{t.upper()}"},
        )
    return f"m-{t}", address


async def mailbox(name: str) -> Mailbox:
    async with unit_of_work() as session:
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == name))
        assert row is not None
        return row


def a_mail() -> bytes:
    t = tag()
    return make_mail(
        sender=f"x-{t}@loja.example", subject="Oi", body="Oi.", message_id=f"r-{t}@loja.example"
    )


async def test_a_failing_and_a_hanging_mailbox_do_not_block_the_others(
    sims: tuple[GmailState, str, GraphState, str],
    monkeypatch: pytest.MonkeyPatch,
    silent_server: str,
) -> None:
    gmail, gmail_url, graph, graph_url = sims
    good_gmail, gmail_address = await add_gmail(gmail, gmail_url, monkeypatch)
    good_graph, graph_address = await add_graph(graph, graph_url, monkeypatch)
    refused, _ = await add_gmail(gmail, gmail_url, monkeypatch, secret="revoked")
    hanging, _ = await add_gmail(gmail, silent_server, monkeypatch)
    async with unit_of_work() as session:  # the hanging one's token endpoint never answers
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == hanging))
        assert row is not None
        row.config = {**row.config, "token_uri": f"{silent_server}/token"}
    gmail.deliver(gmail_address, a_mail())
    graph.deliver(graph_address, a_mail())

    results = {
        r.name: r
        for r in await sync_due(
            names=[good_gmail, good_graph, refused, hanging], force=True, timeout=5.0
        )
    }
    assert results[good_gmail].ok and results[good_graph].ok
    assert results[good_gmail].stats is not None and results[good_gmail].stats.stored == 1
    assert results[good_graph].stats is not None and results[good_graph].stats.stored == 1
    for name, expected in ((refused, "MailboxAuthError"), (hanging, "TimeoutError")):
        assert not results[name].ok
        box = await mailbox(name)
        assert box.state is MailboxState.FAILING and expected in str(box.last_error)
        assert box.failures == 1 and box.locked_until is None
        assert box.next_attempt_at > box.updated_at  # backs off before the next try
    # The good ones are not due again before the poll interval.
    assert await sync_due(names=[good_gmail, good_graph], poll_seconds=3600) == []


async def test_the_worker_loop_keeps_syncing_while_one_mailbox_hangs(
    sims: tuple[GmailState, str, GraphState, str],
    monkeypatch: pytest.MonkeyPatch,
    silent_server: str,
) -> None:
    gmail, gmail_url, _, _ = sims
    hanging, _ = await add_gmail(gmail, silent_server, monkeypatch)
    async with unit_of_work() as session:
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == hanging))
        assert row is not None
        row.config = {**row.config, "token_uri": f"{silent_server}/token"}
    good, address = await add_gmail(gmail, gmail_url, monkeypatch)
    gmail.deliver(address, a_mail())
    stop = asyncio.Event()
    settings = get_settings().model_copy()
    loop = asyncio.create_task(run_mailboxes(settings, stop))
    try:
        async with asyncio.timeout(30):
            # The loop runs in this event loop; its first pass is observed in the database.
            while (await mailbox(good)).last_synced_at is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
    finally:
        stop.set()
        await loop
    assert (await mailbox(good)).state is MailboxState.ACTIVE
    assert (await mailbox(hanging)).last_synced_at is None


async def test_a_leased_mailbox_is_not_synced_twice_at_once(
    sims: tuple[GmailState, str, GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gmail, gmail_url, _, _ = sims
    name, address = await add_gmail(gmail, gmail_url, monkeypatch)
    gmail.deliver(address, a_mail())
    downloads = gmail.raw_downloads
    # The first pass is stopped inside its sync (at the message listing, after it took the
    # lease and its access token), so the second pass certainly runs while the lease is held.
    listing = gmail.hold("/messages", address=address)
    first = asyncio.create_task(sync_due(names=[name], force=True))
    try:
        assert await asyncio.to_thread(listing.arrived.wait, 10), "the first pass never listed"
        assert not first.done()
        leased = await mailbox(name)
        assert leased.locked_until is not None and leased.locked_until > utcnow()
        assert await sync_due(names=[name], force=True) == []  # leased: not run a second time
    finally:
        listing.release()
        async with asyncio.timeout(30):
            results = await first
    [result] = results
    assert result.name == name and result.ok
    assert result.stats is not None and result.stats.stored == 1
    assert gmail.raw_downloads == downloads + 1  # the mail was fetched by one pass only
    assert (await mailbox(name)).locked_until is None  # the lease is given back after the pass


async def test_a_disabled_mailbox_is_not_read_until_enabled(
    sims: tuple[GmailState, str, GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gmail, gmail_url, _, _ = sims
    name, address = await add_gmail(gmail, gmail_url, monkeypatch)
    async with unit_of_work() as session:
        await do_set_enabled(session, name=name, enabled=False)
    gmail.deliver(address, a_mail())
    assert await sync_due(names=[name], force=True) == []
    async with unit_of_work() as session:
        await do_set_enabled(session, name=name, enabled=True)
    [result] = await sync_due(names=[name])
    assert result.ok and result.stats is not None and result.stats.stored == 1
    async with unit_of_work() as session:
        with pytest.raises(NotFound):
            await do_set_enabled(session, name=f"nao-existe-{tag()}", enabled=True)


async def test_secrets_are_referenced_by_variable_name_only() -> None:
    async with unit_of_work() as session:
        with pytest.raises(ValidationFailed, match="NOME"):
            await create_mailbox(
                session,
                provider=MailboxProvider.GRAPH,
                name=f"x-{tag()}",
                address="a@b.example",
                config={"tenant": "t", "client_id": "c"},
                credentials_env={"client_secret": "s3cr3t-value/with+symbols=="},
            )
        with pytest.raises(ValidationFailed, match="client_id"):
            await create_mailbox(
                session,
                provider=MailboxProvider.GMAIL,
                name=f"x-{tag()}",
                address="a@b.example",
                config={},
                credentials_env={"client_secret": "A", "refresh_token": "B"},
            )


async def test_the_imap_settings_mailbox_is_listed_and_mirrors_the_imap_loop_cursor() -> None:
    t = tag()
    imap = ImapSettings(host=f"imap-{t}.example", user=f"ana-{t}@firma.example", port=993)
    async with unit_of_work() as session:
        await do_ensure_settings_mailbox(session, imap=imap)
        await do_ensure_settings_mailbox(session, imap=imap)  # idempotent
        rows = (await session.scalars(sa.select(Mailbox).where(Mailbox.address == imap.user))).all()
        assert len(rows) == 1 and rows[0].config["from_settings"] is True
        assert rows[0].credentials_env == {"password": "IMAP_PASSWORD"}
        name = rows[0].name
        # The worker's IMAP loop advanced its own cursor.
        session.add(
            ImapCursor(
                account=f"{imap.user}@{imap.host}:993", folder="INBOX", uidvalidity=9, last_uid=41
            )
        )
    [result] = await sync_due(names=[name], force=True)
    assert result.ok and result.stats is not None and result.stats.fetched == 0
    assert (await mailbox(name)).cursor == "9:41"


async def test_one_imap_account_may_be_read_in_several_folders_but_each_once() -> None:
    t = tag()
    config = {"host": "imap.firma.example", "user": f"u-{t}@firma.example"}
    async with unit_of_work() as session:
        for name, folder in ((f"a-{t}", "INBOX"), (f"b-{t}", "Juridico")):
            await create_mailbox(
                session,
                provider=MailboxProvider.IMAP,
                name=name,
                address=f"u-{t}@firma.example",
                config={**config, "folder": folder},
                credentials_env={"password": "IMAP_PASSWORD"},
            )
    async with unit_of_work() as session:
        with pytest.raises(Conflict):
            await create_mailbox(
                session,
                provider=MailboxProvider.IMAP,
                name=f"c-{t}",
                address=f"u-{t}@firma.example",
                config={**config, "folder": "Juridico"},
                credentials_env={"password": "IMAP_PASSWORD"},
            )
        await session.execute(
            sa.update(Mailbox)
            .where(Mailbox.name.in_([f"a-{t}", f"b-{t}"]))
            .values(state=MailboxState.DISABLED)
        )
