"""Gmail mailboxes through the real google-api-python-client / google-auth, against a local server
speaking the Gmail API's wire format (api/devtools/gmail_simulator.py): initial and incremental
sync, the expired-history resync without duplicates, the Pub/Sub push hint, a reply threaded in
Gmail, attachments, auto-replies left unanswered, a bounce mapped to the mail we sent, the
refresh-token rotation saved and used after a restart, and Retry-After honoured."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email
import email.policy
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from pydantic import SecretStr

from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.channels.email.composer import email_reply_outbound
from api.channels.email.parser import parse_email
from api.channels.mailboxes.gmail import GmailConnector
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.channels.mailboxes.runner import sync_due
from api.channels.mailboxes.sender import MailboxEmailSender
from api.channels.mailboxes.service import create_mailbox, unseal
from api.config import get_settings
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Message,
)
from api.conversations.outbound import do_queue_outbound
from api.conversations.scheduling import turn_scheduler
from api.db import unit_of_work, utcnow
from api.devtools.gmail_simulator import GmailState, ServerThread, make_signing_key
from api.devtools.gmail_simulator import create_app as create_simulator
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.worker import deliver_due
from api.timeline.service import Actor
from tests.factories import make_case, make_infringer
from tests.helpers.turns import RecordingScheduler
from tests.integration.email_servers import load_eml, make_mail, personalize, tagged_id

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

PUSH_TOKEN = "push-token-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def gmail() -> Iterator[tuple[GmailState, str]]:
    state = GmailState(rotate_refresh_tokens=True)
    with ServerThread(create_simulator(state)) as server:
        yield state, server.url


@pytest.fixture
async def app_server(database_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The service on a loopback port, served in the test's event loop (it shares the test's
    database engine), for the simulator's push requests."""
    monkeypatch.setattr(get_settings().mailboxes, "push_token", SecretStr(PUSH_TOKEN))
    async with serving(create_app()) as url:
        yield url


@asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        assert not task.done(), "the service did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
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


async def add_gmail_box(
    gmail: tuple[GmailState, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    topic: str | None = None,
    secret_ok: bool = True,
    page_size: int | None = None,
) -> tuple[str, str, str]:
    """A Gmail account in the simulator and its mailbox row; (name, address, refresh token)."""
    state, url = gmail
    t = tag()
    address = f"caixa-{t}@firma.example"
    client_id = f"client-{t}.apps.googleusercontent.com"
    refresh = state.add_account(address, client_id=client_id, client_secret=f"secret-{t}")
    monkeypatch.setenv(f"GMAIL_SECRET_{t.upper()}", f"secret-{t}" if secret_ok else "wrong")
    monkeypatch.setenv(f"GMAIL_REFRESH_{t.upper()}", refresh)
    config = {"client_id": client_id, "token_uri": f"{url}/token", "api_base_url": f"{url}/"}
    if topic:
        config["topic"] = topic
    if page_size:
        config["page_size"] = str(page_size)
    async with unit_of_work() as session:
        await create_mailbox(
            session,
            provider=MailboxProvider.GMAIL,
            name=f"gmail-{t}",
            address=address,
            config=config,
            credentials_env={
                "client_secret": f"GMAIL_SECRET_{t.upper()}",
                "refresh_token": f"GMAIL_REFRESH_{t.upper()}",
            },
        )
    return f"gmail-{t}", address, refresh


async def mailbox(name: str) -> Mailbox:
    async with unit_of_work() as session:
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == name))
        assert row is not None
        return row


async def copies(message_ids: list[str]) -> dict[str, int]:
    async with unit_of_work() as session:
        rows = await session.execute(
            sa.select(Message.provider_id, sa.func.count())
            .where(Message.channel == Channel.EMAIL, Message.provider_id.in_(message_ids))
            .group_by(Message.provider_id)
        )
        return {str(pid): int(n) for pid, n in rows.all()}


async def stored(provider_id: str) -> Message:
    async with unit_of_work() as session:
        message = await session.scalar(
            sa.select(Message).where(
                Message.channel == Channel.EMAIL, Message.provider_id == provider_id
            )
        )
        assert message is not None
        return message


def mail(t: str, n: int, **kwargs: object) -> bytes:
    return make_mail(
        sender=f"vendedor-{t}@loja.example",
        subject=f"Notificação {n}",
        body=f"Mensagem {n} do vendedor.",
        message_id=f"m{n}-{t}@loja.example",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_initial_then_incremental_sync_keeps_each_mail_once_with_attachments(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    pdf = b"%PDF-1.4 nota fiscal " + t.encode()
    state.deliver(address, mail(t, 1, attachments=((pdf, "nota.pdf", "application/pdf"),)))
    state.deliver(address, mail(t, 2))

    [first] = await sync_due(names=[name], force=True)
    assert first.ok and first.stats is not None
    assert (first.stats.stored, first.stats.duplicates) == (2, 0)
    box = await mailbox(name)
    assert box.state is MailboxState.ACTIVE and box.cursor is not None
    message = await stored(f"m1-{t}@loja.example")
    assert (message.meta or {})["mailbox"]["provider"] == "gmail"
    async with unit_of_work() as session:
        [attachment] = (
            await session.scalars(sa.select(Attachment).where(Attachment.message_id == message.id))
        ).all()
    assert (attachment.filename, attachment.size) == ("nota.pdf", len(pdf))

    state.deliver(address, mail(t, 3))
    before = len(state.requests)
    [second] = await sync_due(names=[name], force=True)
    assert second.ok and second.stats is not None
    assert (second.stats.stored, second.stats.duplicates) == (1, 0)
    assert any("/history" in path for _, path in state.requests[before:])
    assert not any(path.endswith("/messages") for _, path in state.requests[before:])
    assert (await mailbox(name)).cursor != box.cursor
    ids = [f"m{n}-{t}@loja.example" for n in (1, 2, 3)]
    assert await copies(ids) == dict.fromkeys(ids, 1)


async def test_an_expired_history_id_resyncs_without_loss_or_duplicates(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    state.deliver(address, mail(t, 1))
    state.deliver(address, mail(t, 2))
    [first] = await sync_due(names=[name], force=True)
    assert first.ok
    state.deliver(address, mail(t, 3))  # arrives while we are away…
    state.expire_history(address)  # …and Gmail forgets the history we would read it from

    downloads = state.raw_downloads
    [result] = await sync_due(names=[name], force=True)
    assert result.ok and result.stats is not None and result.stats.full_resync
    assert (result.stats.stored, result.stats.duplicates) == (1, 2)
    assert state.raw_downloads == downloads + 1  # the two known mails recognised by their headers
    ids = [f"m{n}-{t}@loja.example" for n in (1, 2, 3)]
    assert await copies(ids) == dict.fromkeys(ids, 1)
    # And the new cursor works incrementally again.
    state.deliver(address, mail(t, 4))
    [after] = await sync_due(names=[name], force=True)
    assert after.stats is not None and not after.stats.full_resync and after.stats.stored == 1


async def test_a_pubsub_push_is_an_authenticated_hint_to_sync_now(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch, app_server: str
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch, topic="projects/firma/topics/gmail")
    [first] = await sync_due(names=[name], force=True)
    assert first.ok
    box = await mailbox(name)
    assert box.push_id == "projects/firma/topics/gmail"
    assert box.push_expires_at is not None and box.push_expires_at > utcnow() + dt.timedelta(days=6)
    # Nothing is due right after a sync (the poll interval has not passed).
    assert await sync_due(names=[name], poll_seconds=3600) == []

    forged = {"message": {"data": base64.b64encode(b'{"emailAddress": "x"}').decode()}}
    async with httpx.AsyncClient(base_url=app_server) as client:
        assert (await client.post("/webhooks/gmail/push", json=forged)).status_code == 403
        wrong = await client.post("/webhooks/gmail/push?token=nope", json=forged)
        assert wrong.status_code == 403
        bad = await client.post(f"/webhooks/gmail/push?token={PUSH_TOKEN}", json={"x": 1})
        assert bad.status_code == 422
    assert (await mailbox(name)).sync_requested_at is None

    state.push_url = f"{app_server}/webhooks/gmail/push?token={PUSH_TOKEN}"
    answered = len(state.pushes)
    try:
        state.deliver(address, mail(tag(), 1))  # Gmail → Pub/Sub → our endpoint
        await asyncio.to_thread(state.drain)
    finally:
        state.push_url = None
    assert state.pushes[answered:] == [204]
    assert (await mailbox(name)).sync_requested_at is not None
    [hinted] = await sync_due(names=[name], poll_seconds=3600)
    assert hinted.ok and hinted.stats is not None and hinted.stats.stored == 1
    assert await sync_due(names=[name], poll_seconds=3600) == []


async def test_the_watch_is_renewed_before_it_expires(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, _, _ = await add_gmail_box(gmail, monkeypatch, topic="projects/firma/topics/g")
    await sync_due(names=[name], force=True)
    async with unit_of_work() as session:
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == name))
        assert row is not None
        row.push_expires_at = utcnow() + dt.timedelta(hours=3)
    before = sum(1 for _, path in state.requests if path.endswith("/watch"))
    await sync_due(names=[name], force=True)
    assert sum(1 for _, path in state.requests if path.endswith("/watch")) == before + 1
    renewed = (await mailbox(name)).push_expires_at
    assert renewed is not None and renewed > utcnow() + dt.timedelta(days=6)


async def test_a_reply_goes_out_in_the_gmail_thread_and_its_bounce_is_mapped_back(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    seller = f"joao-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="João Silva", emails=(seller,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
        reference = case.reference
    theirs = make_mail(
        sender=f"João Silva <{seller}>",
        to=address,
        subject=f"Notificação extrajudicial [{reference}]",
        body="Já retirei os anúncios. Como faço o pagamento?",
        message_id=f"their-{t}@loja.example",
    )
    delivered = state.deliver(address, theirs)
    await sync_due(names=[name], force=True)
    inbound = await stored(f"their-{t}@loja.example")
    assert inbound.case_id == case.id

    async with unit_of_work() as session:
        conversation = await session.get(Conversation, inbound.conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session,
            conversation=conversation,
            texts=["Recebemos sua mensagem; seguem as opções de pagamento."],
            author=AuthorKind.BOT,
            reply_to_message_id=inbound.id,
        )
        reply = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=Actor.bot()
        )
        reply_id = reply.id
    sender = MailboxEmailSender()
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation.id) == 1

    sent = await stored_by_id(reply_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    [out] = [m for m in state.sent(address) if f"<{sent.provider_id}>".encode() in m.raw]
    assert out.thread_id == delivered.thread_id
    parsed = email.message_from_bytes(out.raw, policy=email.policy.default)
    assert parsed["In-Reply-To"] == f"<their-{t}@loja.example>"
    assert f"<their-{t}@loja.example>" in parsed["References"]
    assert parsed["Subject"] == f"Re: Notificação extrajudicial [{reference}]"
    assert parsed["To"] == seller and address in parsed["From"]

    # The recipient's server refuses it: the report lands in the Gmail inbox.
    dsn = personalize(
        load_eml("dsn_bounce.eml"),
        t,
        {
            tagged_id("tt.77.b1c2d3e4f5a6b7c8d9e0@tratativa.example", t): str(sent.provider_id),
            "vendas@lojainexistente.com.br": seller,
        },
    )
    state.deliver(address, dsn)
    [result] = await sync_due(names=[name], force=True)
    assert result.stats is not None and result.stats.bounces == 1
    failed = await stored_by_id(reply_id)
    assert failed.delivery_status is DeliveryStatus.FAILED
    assert failed.delivery_error is not None and "5.1.1" in failed.delivery_error
    # Our own sent copy (label SENT) was never taken for inbound mail.
    async with unit_of_work() as session:
        count = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.provider_id == sent.provider_id)
        )
    assert count == 1


async def stored_by_id(message_id: int) -> Message:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def test_an_auto_reply_is_stored_and_never_answered(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    raw = personalize(load_eml("out_of_office.eml"), t)
    state.deliver(address, raw)
    seen = RecordingScheduler()
    with turn_scheduler(seen):
        [result] = await sync_due(names=[name], force=True)
    assert result.stats is not None and result.stats.stored == 1
    message = await stored(str(parse_email(raw).message_id))
    assert (message.meta or {})["email_kind"] == "auto_reply"
    assert (message.meta or {})["answerable"] is False
    assert message.handled_at is not None and seen.requests == []


async def test_a_rotated_refresh_token_is_saved_and_used_after_a_restart(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, original = await add_gmail_box(gmail, monkeypatch)
    connector = GmailConnector()
    [first] = await sync_due(
        names=[name], force=True, connectors={MailboxProvider.GMAIL: connector}
    )
    assert first.ok
    sealed = (await mailbox(name)).token_sealed
    assert sealed is not None and original not in sealed  # stored encrypted
    rotated = unseal(sealed)
    assert rotated is not None and rotated != original
    assert original not in state.refresh_tokens and rotated in state.refresh_tokens

    # A restart (a new connector, no cached token): the environment's token is dead, the saved
    # one works.
    state.deliver(address, mail(tag(), 1))
    restarted = GmailConnector()
    [second] = await sync_due(
        names=[name], force=True, connectors={MailboxProvider.GMAIL: restarted}
    )
    assert second.ok and second.stats is not None and second.stats.stored == 1

    # An access token revoked mid-life: a 401 refreshes (and rotates) once, the call succeeds.
    state.expire_access_tokens()
    state.deliver(address, mail(tag(), 2))
    tokens_before = state.token_requests
    [third] = await sync_due(
        names=[name], force=True, connectors={MailboxProvider.GMAIL: restarted}
    )
    assert third.ok and third.stats is not None and third.stats.stored == 1
    assert state.token_requests == tokens_before + 1
    latest = unseal(str((await mailbox(name)).token_sealed))
    assert latest not in (None, rotated) and latest in state.refresh_tokens


async def test_throttling_honours_retry_after(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    await sync_due(names=[name], force=True)
    state.deliver(address, mail(tag(), 1))
    state.add_fault(f"{address}/history", 429, retry_after="7")
    state.add_fault("/me/history", 429, retry_after="7")
    started = utcnow()
    [throttled] = await sync_due(names=[name], force=True)
    assert not throttled.ok and throttled.retry_at is not None
    box = await mailbox(name)
    assert box.state is MailboxState.THROTTLED and "429" in str(box.last_error)
    assert box.next_attempt_at >= started + dt.timedelta(seconds=7)
    requests = len(state.requests)
    # Before Retry-After has passed nothing is sent to Gmail …
    assert await sync_due(names=[name], now=started + dt.timedelta(seconds=6)) == []
    assert len(state.requests) == requests
    # … after it, the mailbox syncs and is active again.
    [retried] = await sync_due(names=[name], now=utcnow() + dt.timedelta(seconds=8))
    assert retried.ok and retried.stats is not None and retried.stats.stored == 1
    assert (await mailbox(name)).state is MailboxState.ACTIVE


async def test_mail_seen_through_imap_is_not_ingested_again_through_gmail(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.channels.email.ingest import do_ingest_email

    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    raw = mail(t, 1)
    async with unit_of_work() as session:  # the IMAP path stored it first
        await do_ingest_email(session, raw, source={"account": "imap", "uid": 1})
    state.deliver(address, raw)
    [result] = await sync_due(names=[name], force=True)
    assert result.stats is not None and (result.stats.stored, result.stats.duplicates) == (0, 1)
    assert await copies([f"m1-{t}@loja.example"]) == {f"m1-{t}@loja.example": 1}


async def test_an_authenticated_push_is_checked_against_googles_signed_oidc_token(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch, app_server: str
) -> None:
    state, url = gmail
    account = "gmail-push@firma.iam.gserviceaccount.com"
    audience = f"{app_server}/webhooks/gmail/push"
    config = get_settings().mailboxes
    monkeypatch.setattr(config, "push_token", None)
    monkeypatch.setattr(config, "push_service_account", account)
    monkeypatch.setattr(config, "push_audience", audience)
    monkeypatch.setattr(config, "push_certs_url", f"{url}/oauth2/v1/certs")
    name, address, _ = await add_gmail_box(gmail, monkeypatch, topic="projects/firma/topics/a")
    await sync_due(names=[name], force=True)

    body = {
        "message": {
            "data": base64.b64encode(f'{{"emailAddress": "{address}"}}'.encode()).decode(),
            "messageId": "1",
        },
        "subscription": "projects/firma/subscriptions/gmail",
    }
    _, stranger_key, _ = make_signing_key()
    forged = {
        "another key": state.oidc_token(audience=audience, email=account, private_pem=stranger_key),
        "another account": state.oidc_token(audience=audience, email="x@evil.example"),
        "another audience": state.oidc_token(audience="https://evil.example/", email=account),
        "another issuer": state.oidc_token(audience=audience, email=account, issuer="evil"),
    }
    async with httpx.AsyncClient(base_url=app_server) as client:
        for why, token in forged.items():
            refused = await client.post(
                "/webhooks/gmail/push", json=body, headers={"Authorization": f"Bearer {token}"}
            )
            assert refused.status_code == 403, why
        anonymous = await client.post(f"/webhooks/gmail/push?token={PUSH_TOKEN}", json=body)
        assert anonymous.status_code == 403  # the URL token is not configured any more
    assert (await mailbox(name)).sync_requested_at is None

    state.push_url, state.push_service_account, state.push_audience = audience, account, audience
    answered = len(state.pushes)
    try:
        state.deliver(address, mail(tag(), 1))
        await asyncio.to_thread(state.drain)
    finally:
        state.push_url = state.push_service_account = state.push_audience = None
    assert state.pushes[answered:] == [204]
    [hinted] = await sync_due(names=[name], poll_seconds=3600)
    assert hinted.ok and hinted.stats is not None and hinted.stats.stored == 1

    # Google rotates its keys: a token naming a key we have not cached fetches them again.
    state.rotate_signing_key()
    async with httpx.AsyncClient(base_url=app_server) as client:
        rotated = await client.post(
            "/webhooks/gmail/push",
            json=body,
            headers={
                "Authorization": f"Bearer {state.oidc_token(audience=audience, email=account)}"
            },
        )
    assert rotated.status_code == 204


async def test_a_long_history_cut_short_resumes_after_the_last_stored_page(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch, page_size=2)
    await sync_due(names=[name], force=True)  # cursor at the current history id
    t = tag()
    delivered = [state.deliver(address, mail(t, n)) for n in range(1, 6)]  # pages of 2, 2, 1
    state.add_fault(f"/messages/{delivered[3].id}", 429, retry_after="1")
    [cut] = await sync_due(names=[name], force=True)
    assert not cut.ok
    [resumed] = await sync_due(names=[name], now=utcnow() + dt.timedelta(seconds=2))
    assert resumed.ok and resumed.stats is not None
    # Only the page that was cut short is read again: m3 is recognised, m1 and m2 are not re-read.
    assert (resumed.stats.stored, resumed.stats.duplicates) == (2, 1)
    ids = [f"m{n}-{t}@loja.example" for n in range(1, 6)]
    assert await copies(ids) == dict.fromkeys(ids, 1)


async def test_a_service_account_with_domain_wide_delegation_reads_a_users_mailbox(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = gmail
    t = tag()
    domain = f"firma-{t}.example"
    key = state.add_service_account(domain, token_uri=f"{url}/token")
    monkeypatch.setenv(f"GMAIL_SA_{t.upper()}", json.dumps(key))
    inside, outside = f"juridico@{domain}", f"juridico@outra-{t}.example"
    for address in (inside, outside):
        state.add_account(address, client_id=f"unused-{t}", client_secret="unused")
    async with unit_of_work() as session:
        for address in (inside, outside):
            await create_mailbox(
                session,
                provider=MailboxProvider.GMAIL,
                name=f"sa-{address}",
                address=address,
                config={"api_base_url": f"{url}/"},
                credentials_env={"service_account": f"GMAIL_SA_{t.upper()}"},
            )
    state.deliver(inside, mail(t, 1))
    results = {
        r.name: r for r in await sync_due(names=[f"sa-{inside}", f"sa-{outside}"], force=True)
    }
    assert results[f"sa-{inside}"].ok
    assert results[f"sa-{inside}"].stats is not None
    assert results[f"sa-{inside}"].stats.stored == 1
    assert not results[f"sa-{outside}"].ok
    assert "conta de serviço" in str(results[f"sa-{outside}"].error)
    assert key["private_key"] not in str((await mailbox(f"sa-{inside}")).credentials_env)


async def test_mail_moved_into_the_inbox_later_is_read_then(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    await sync_due(names=[name], force=True)
    t = tag()
    spam = state.deliver(address, mail(t, 1), labels=("SPAM",))
    [first] = await sync_due(names=[name], force=True)
    assert first.stats is not None and first.stats.fetched == 0
    state.add_label(address, spam.id, "INBOX")  # someone clicks "not spam"
    [second] = await sync_due(names=[name], force=True)
    assert second.stats is not None and second.stats.stored == 1
    assert await copies([f"m1-{t}@loja.example"]) == {f"m1-{t}@loja.example": 1}


async def test_a_send_gmail_accepted_before_a_crash_is_not_sent_again(
    gmail: tuple[GmailState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = gmail
    name, address, _ = await add_gmail_box(gmail, monkeypatch)
    t = tag()
    seller = f"ana-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(seller,))
        await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    state.deliver(
        address, make_mail(sender=seller, subject="Oi", body="Oi.", message_id=f"a-{t}@x")
    )
    await sync_due(names=[name], force=True)
    inbound = await stored(f"a-{t}@x")
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, inbound.conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session, conversation=conversation, texts=["Recebido."], author=AuthorKind.BOT
        )
        reply = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=Actor.bot()
        )
        reply_id, conversation_id = reply.id, conversation.id
    sender = MailboxEmailSender()
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1
    # The worker died after Gmail accepted the mail and before the row was marked sent: the
    # lease lapses and another worker takes the row again.
    async with unit_of_work() as session:
        item = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == reply_id))
        assert item is not None
        item.state = OutboxState.IN_FLIGHT
        item.locked_until = utcnow() - dt.timedelta(seconds=1)
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1
    sent = await stored_by_id(reply_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    copies_sent = [m for m in state.sent(address) if f"<{sent.provider_id}>".encode() in m.raw]
    assert len(copies_sent) == 1
