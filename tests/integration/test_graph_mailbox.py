"""Microsoft 365 mailboxes through Microsoft Graph (httpx), against a local server speaking Graph's
wire format (api/devtools/graph_simulator.py): delta sync across pages, 410 → fresh round with no
duplicates, subscriptions (validationToken handshake, clientState, lifecycle events), replies
through createReply/send, attachments, auto-replies, bounces, token re-acquisition, Retry-After."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.channels.email.composer import email_reply_outbound
from api.channels.email.parser import parse_email
from api.channels.mailboxes.models import Mailbox, MailboxProvider, MailboxState
from api.channels.mailboxes.runner import sync_due
from api.channels.mailboxes.sender import MailboxEmailSender
from api.channels.mailboxes.service import create_mailbox, do_set_enabled
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Message,
)
from api.conversations.outbound import OutboundAttachment, do_queue_outbound
from api.conversations.scheduling import turn_scheduler
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.devtools.gmail_simulator import ServerThread
from api.devtools.graph_simulator import GraphState
from api.devtools.graph_simulator import create_app as create_simulator
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.worker import deliver_due
from api.storage import store_blob
from api.timeline.service import Actor, ActorKind
from tests.factories import make_case, make_infringer
from tests.helpers.turns import RecordingScheduler
from tests.integration.email_servers import load_eml, make_mail, personalize, tagged_id

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

TENANT = "contoso-tenant"


@pytest.fixture(scope="module")
def graph() -> Iterator[tuple[GraphState, str]]:
    state = GraphState()
    with ServerThread(create_simulator(state)) as server:
        yield state, server.url


@asynccontextmanager
async def serving(app: object) -> AsyncIterator[str]:
    """The service on a loopback port in the test's event loop (it shares the test's engine)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
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


@pytest.fixture
async def app_server(database_url: str) -> AsyncIterator[str]:
    async with serving(create_app()) as url:
        yield url


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


async def add_graph_box(
    graph: tuple[GraphState, str],
    monkeypatch: pytest.MonkeyPatch,
    *,
    notification_url: str | None = None,
    secret_ok: bool = True,
    base_url: str | None = None,
) -> tuple[str, str]:
    state, url = graph
    t = tag()
    address = f"atendimento-{t}@firma.onmicrosoft.com"
    client_id = str(uuid.uuid4())
    state.add_app(TENANT, client_id, f"secret-{t}", [address])
    monkeypatch.setenv(f"GRAPH_SECRET_{t.upper()}", f"secret-{t}" if secret_ok else "wrong")
    config = {
        "tenant": TENANT,
        "client_id": client_id,
        "api_base_url": f"{base_url or url}/v1.0",
        "login_base_url": base_url or url,
    }
    if notification_url:
        config["notification_url"] = notification_url
    async with unit_of_work() as session:
        await create_mailbox(
            session,
            provider=MailboxProvider.GRAPH,
            name=f"m365-{t}",
            address=address,
            config=config,
            credentials_env={"client_secret": f"GRAPH_SECRET_{t.upper()}"},
        )
    return f"m365-{t}", address


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


async def by_id(message_id: int) -> Message:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


def mail(t: str, n: int, **kwargs: object) -> bytes:
    return make_mail(
        sender=f"loja-{t}@vendas.example",
        subject=f"Assunto {n}",
        body=f"Texto {n}.",
        message_id=f"g{n}-{t}@vendas.example",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_delta_sync_follows_pages_then_continues_from_the_delta_link(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    zip_file = b"PK\x03\x04 fotos " + t.encode()
    state.deliver(address, mail(t, 0, attachments=((zip_file, "fotos.zip", "application/zip"),)))
    for n in range(1, 12):  # 12 mails: two pages of Graph's 10
        state.deliver(address, mail(t, n))
    [first] = await sync_due(names=[name], force=True)
    assert first.ok and first.stats is not None
    assert (first.stats.stored, first.stats.duplicates) == (12, 0)
    cursor = (await mailbox(name)).cursor
    assert cursor is not None and "$deltatoken=" in cursor
    message = await stored(f"g0-{t}@vendas.example")
    assert (message.meta or {})["mailbox"]["provider"] == "graph"
    async with unit_of_work() as session:
        [attachment] = (
            await session.scalars(sa.select(Attachment).where(Attachment.message_id == message.id))
        ).all()
    assert (attachment.filename, attachment.size) == ("fotos.zip", len(zip_file))

    state.deliver(address, mail(t, 12))
    [second] = await sync_due(names=[name], force=True)
    assert second.stats is not None and (second.stats.stored, second.stats.duplicates) == (1, 0)
    ids = [f"g{n}-{t}@vendas.example" for n in range(13)]
    assert await copies(ids) == dict.fromkeys(ids, 1)


async def test_a_gone_delta_token_starts_a_fresh_round_without_duplicates(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    for n in range(3):
        state.deliver(address, mail(t, n))
    await sync_due(names=[name], force=True)
    state.deliver(address, mail(t, 3))
    state.expire_delta_tokens(address)  # the next delta call answers 410 Gone
    [result] = await sync_due(names=[name], force=True)
    assert result.ok and result.stats is not None and result.stats.full_resync
    assert (result.stats.stored, result.stats.duplicates) == (1, 3)
    ids = [f"g{n}-{t}@vendas.example" for n in range(4)]
    assert await copies(ids) == dict.fromkeys(ids, 1)


async def test_subscription_handshake_client_state_and_lifecycle_events(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch, app_server: str
) -> None:
    state, _ = graph
    endpoint = f"{app_server}/webhooks/graph/notifications"
    name, address = await add_graph_box(graph, monkeypatch, notification_url=endpoint)
    async with httpx.AsyncClient() as client:
        echo = await client.post(endpoint, params={"validationToken": "Validation: abc 123"})
    assert echo.status_code == 200 and echo.text == "Validation: abc 123"
    assert echo.headers["content-type"].startswith("text/plain")

    [first] = await sync_due(names=[name], force=True)  # creates the subscription
    assert first.ok
    box = await mailbox(name)
    assert box.push_id in state.subscriptions and box.push_secret_hash is not None
    client_state = state.subscriptions[str(box.push_id)].client_state
    assert client_state and client_state not in str(box.push_secret_hash)
    assert box.push_expires_at is not None and box.push_expires_at > utcnow() + dt.timedelta(days=1)
    assert await sync_due(names=[name], poll_seconds=3600) == []

    # A forged notification (wrong clientState) is refused and asks for nothing.
    forged = {"value": [{"subscriptionId": box.push_id, "clientState": "guess",
                         "changeType": "created"}]}  # fmt: skip
    async with httpx.AsyncClient() as client:
        assert (await client.post(endpoint, json=forged)).status_code == 403
        assert (await client.post(endpoint, json={"nope": 1})).status_code == 422
    assert (await mailbox(name)).sync_requested_at is None

    # New mail → change notification → a sync before the poll is due.
    t = tag()
    state.deliver(address, mail(t, 1))
    await asyncio.to_thread(state.drain)
    assert state.notification_answers[-1] == 202
    [hinted] = await sync_due(names=[name], poll_seconds=3600)
    assert hinted.stats is not None and hinted.stats.stored == 1

    # Missed notifications: Graph says so; we run a delta sync.
    state.deliver(address, mail(t, 2))
    await asyncio.to_thread(state.drain)
    await sync_due(names=[name], poll_seconds=3600)
    state.lifecycle(address, "missed")
    await asyncio.to_thread(state.drain)
    [missed] = await sync_due(names=[name], poll_seconds=3600)
    assert missed.ok and missed.stats is not None

    # reauthorizationRequired → the subscription is renewed (PATCH) at the end of the pass.
    subscription_id = str((await mailbox(name)).push_id)
    before = state.subscriptions[subscription_id].expiration
    state.lifecycle(address, "reauthorizationRequired")
    await asyncio.to_thread(state.drain)
    [renewed] = await sync_due(names=[name], poll_seconds=3600)
    assert renewed.ok
    assert any(
        method == "PATCH" and path.endswith(subscription_id) for method, path, _ in state.requests
    )
    assert state.subscriptions[subscription_id].expiration > before
    assert (await mailbox(name)).push_id == subscription_id

    # subscriptionRemoved → a new subscription (new handshake, new clientState).
    state.lifecycle(address, "subscriptionRemoved")
    await asyncio.to_thread(state.drain)
    [recreated] = await sync_due(names=[name], poll_seconds=3600)
    assert recreated.ok
    box = await mailbox(name)
    assert box.push_id not in (None, subscription_id) and box.push_id in state.subscriptions
    assert await copies([f"g{n}-{t}@vendas.example" for n in (1, 2)]) == {
        f"g1-{t}@vendas.example": 1,
        f"g2-{t}@vendas.example": 1,
    }


async def test_a_reply_goes_through_create_reply_and_its_bounce_is_mapped_back(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    seller = f"maria-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="Maria Souza", emails=(seller,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
        reference = case.reference
    theirs = make_mail(
        sender=f"Maria Souza <{seller}>",
        to=address,
        subject=f"Notificação extrajudicial [{reference}]",
        body="Recebi a notificação. Posso parcelar?",
        message_id=f"their-{t}@loja.example",
    )
    original = state.deliver(address, theirs)
    await sync_due(names=[name], force=True)
    inbound = await stored(f"their-{t}@loja.example")
    assert inbound.case_id == case.id
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, inbound.conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session,
            conversation=conversation,
            texts=["Sim, o pagamento pode ser parcelado."],
            author=AuthorKind.BOT,
            reply_to_message_id=inbound.id,
        )
        reply = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=Actor.bot()
        )
        reply_id, conversation_id = reply.id, conversation.id
    sender = MailboxEmailSender()
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1

    sent = await by_id(reply_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    [out] = [m for m in state.sent if m.internet_message_id == sent.provider_id]
    assert out.conversation_id == original.conversation_id  # Outlook threads it
    assert out.in_reply_to == f"their-{t}@loja.example"
    assert out.subject == f"Re: Notificação extrajudicial [{reference}]"
    assert out.to == [seller]
    assert "Sim, o pagamento pode ser parcelado." in out.body["content"]

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
    failed = await by_id(reply_id)
    assert failed.delivery_status is DeliveryStatus.FAILED
    assert failed.delivery_error is not None and "5.1.1" in failed.delivery_error


async def test_a_throttled_send_waits_for_retry_after(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    seller = f"rui-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(seller,))
        await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    state.deliver(
        address,
        make_mail(sender=seller, subject="Dúvida", body="Oi.", message_id=f"g1-{t}@vendas.example"),
    )
    await sync_due(names=[name], force=True)
    inbound = await stored(f"g1-{t}@vendas.example")
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, inbound.conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session, conversation=conversation, texts=["Olá."], author=AuthorKind.BOT
        )
        reply = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=Actor.bot()
        )
        reply_id, conversation_id = reply.id, conversation.id
    state.add_fault("/createReply", 429, retry_after="120")
    started = utcnow()
    sender = MailboxEmailSender()
    await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id)
    async with unit_of_work() as session:
        item = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == reply_id))
        assert item is not None
    assert item.state is OutboxState.PENDING and "429" in str(item.last_error)
    assert item.next_attempt_at >= started + dt.timedelta(seconds=120)
    assert not any(m.to == [seller] for m in state.sent)


async def test_an_auto_reply_is_stored_and_never_answered(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    raw = personalize(load_eml("out_of_office.eml"), tag())
    state.deliver(address, raw)
    seen = RecordingScheduler()
    with turn_scheduler(seen):
        [result] = await sync_due(names=[name], force=True)
    assert result.stats is not None and result.stats.stored == 1
    message = await stored(str(parse_email(raw).message_id))
    assert (message.meta or {})["email_kind"] == "auto_reply"
    assert message.handled_at is not None and seen.requests == []


async def test_an_expired_access_token_is_reacquired_once(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    await sync_due(names=[name], force=True)
    state.expire_access_tokens()
    state.deliver(address, mail(tag(), 1))
    before = state.token_requests
    [result] = await sync_due(names=[name], force=True)
    assert result.ok and result.stats is not None and result.stats.stored == 1
    assert state.token_requests == before + 1


async def test_throttled_sync_honours_retry_after_then_resumes(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    await sync_due(names=[name], force=True)
    state.deliver(address, mail(tag(), 1))
    state.add_fault(f"/users/{address}/mailFolders", 503, retry_after="9")
    started = utcnow()
    [throttled] = await sync_due(names=[name], force=True)
    assert not throttled.ok
    box = await mailbox(name)
    assert box.state is MailboxState.THROTTLED and "503" in str(box.last_error)
    assert box.next_attempt_at >= started + dt.timedelta(seconds=9)
    requests = len(state.requests)
    assert await sync_due(names=[name], now=started + dt.timedelta(seconds=8)) == []
    assert len(state.requests) == requests
    [resumed] = await sync_due(names=[name], now=utcnow() + dt.timedelta(seconds=10))
    assert resumed.ok and resumed.stats is not None and resumed.stats.stored == 1
    assert (await mailbox(name)).state is MailboxState.ACTIVE


async def test_a_default_sender_mailbox_sends_mail_that_answers_nothing_it_read(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    async with unit_of_work() as session:
        row = await session.scalar(sa.select(Mailbox).where(Mailbox.name == name))
        assert row is not None
        row.config = {**row.config, "default_sender": True}
    t = tag()
    seller = f"novo-{t}@loja.example"
    try:
        async with unit_of_work() as session:
            infringer = await make_infringer(session, emails=(seller,))
            case = await make_case(session, infringer=infringer, status=CaseStatus.APTO_NOTIFICAR)
            found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw=seller)
            conversation = await create_conversation(
                session, contact=found.contact, channel=Channel.EMAIL, address=seller, case=case
            )
            outbound = await email_reply_outbound(
                session,
                conversation=conversation,
                texts=["Identificamos anúncios de produtos da marca."],
                author=AuthorKind.SYSTEM,
            )
            notice = await do_queue_outbound(
                session, conversation=conversation, outbound=outbound, actor=Actor.system()
            )
            notice_id, conversation_id, reference = notice.id, conversation.id, case.reference
        sender = MailboxEmailSender()  # no SMTP fallback at all
        assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1
        sent = await by_id(notice_id)
        assert sent.delivery_status is DeliveryStatus.SENT
        [out] = [m for m in state.sent if m.internet_message_id == sent.provider_id]
        assert out.to == [seller] and out.in_reply_to is None
        assert reference in out.subject
        assert out.headers == {"X-Auto-Response-Suppress": "All"}
        assert address in state.users and out.id in state.users[address].mails
    finally:
        async with unit_of_work() as session:
            await do_set_enabled(session, name=name, enabled=False)


async def test_graph_sends_once_across_a_crash_and_a_failed_send(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    seller = f"bia-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(seller,))
        await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    state.deliver(
        address, make_mail(sender=seller, subject="Oi", body="Oi.", message_id=f"b-{t}@x")
    )
    await sync_due(names=[name], force=True)
    inbound = await stored(f"b-{t}@x")
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

    # The send call fails (503): the draft stays behind; the retry replaces it.
    state.add_fault("/send", 503, retry_after="1")
    await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id)
    assert not any(m.to == [seller] for m in state.sent)
    async with unit_of_work() as session:
        item = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == reply_id))
        assert item is not None and item.state is OutboxState.PENDING
        item.next_attempt_at = utcnow()
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1

    # The worker then dies before recording the send: another worker retries the row.
    async with unit_of_work() as session:
        item = await session.scalar(sa.select(OutboxItem).where(OutboxItem.message_id == reply_id))
        assert item is not None and item.state is OutboxState.DONE
        item.state = OutboxState.IN_FLIGHT
        item.locked_until = utcnow() - dt.timedelta(seconds=1)
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1

    sent = await by_id(reply_id)
    assert sent.delivery_status is DeliveryStatus.SENT
    mine = [m for m in state.users[address].mails.values() if m.to == [seller]]
    assert [(m.folder, m.internet_message_id) for m in mine] == [("sentitems", sent.provider_id)]
    assert [m for m in state.sent if m.to == [seller]] == mine


async def test_an_analyst_reply_carries_a_small_and_a_large_attachment(
    graph: tuple[GraphState, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = graph
    name, address = await add_graph_box(graph, monkeypatch)
    t = tag()
    seller = f"leo-{t}@loja.example"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(seller,))
        await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    state.deliver(
        address, make_mail(sender=seller, subject="Oi", body="Oi.", message_id=f"l-{t}@x")
    )
    await sync_due(names=[name], force=True)
    inbound = await stored(f"l-{t}@x")
    small = b"%PDF-1.4 termo " + t.encode()
    large = (b"%PDF-1.4 fotos " + t.encode()) * (3_600_000 // 24)  # above Graph's 3 MB inline
    attachments = [
        OutboundAttachment(
            store_blob(small, "application/pdf").path, "termo.pdf", "application/pdf"
        ),
        OutboundAttachment(
            store_blob(large, "application/pdf").path, "fotos.pdf", "application/pdf"
        ),
    ]
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, inbound.conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session,
            conversation=conversation,
            texts=["Seguem o termo e as fotos."],
            author=AuthorKind.ANALYST,
            author_name="Ana",
            attachments=attachments,
        )
        reply = await do_queue_outbound(
            session,
            conversation=conversation,
            outbound=outbound,
            actor=Actor(ActorKind.ANALYST, name="Ana"),
        )
        reply_id, conversation_id = reply.id, conversation.id
    sender = MailboxEmailSender()
    assert await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id) == 1
    sent = await by_id(reply_id)
    assert sent.delivery_status is DeliveryStatus.SENT, sent.delivery_error
    [out] = [m for m in state.sent if m.internet_message_id == sent.provider_id]
    assert [(a["name"], a["data"]) for a in out.attachments] == [
        ("termo.pdf", small),
        ("fotos.pdf", large),
    ]
    assert out.headers == {}  # an analyst's mail is not automatic
