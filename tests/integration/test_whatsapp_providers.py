"""Every WhatsApp provider beyond Twilio (Meta Cloud API, 360dialog, Z-API, UltraMsg), through
its real, authenticated webhook and its local wire-format simulator: stored once by provider id,
forged and missing credentials refused with nothing stored, media fetched after the ack,
replies leaving through the provider and number the infringer wrote to, statuses out of order,
permanent and retryable refusals, the 24-hour window (Meta's 131047 on the timeline), opt-out."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from api.channels.numbers.models import Provider
from api.channels.whatsapp_twilio.fetching import fetch_due_media
from api.contacts.models import ContactPoint
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    MediaState,
    Message,
)
from api.conversations.outbound import (
    ContactSuppressed,
    OutboundAttachment,
    OutboundMessage,
    TemplateUse,
    WindowClosed,
    do_queue_message,
    public_media_url,
)
from api.db import unit_of_work, utcnow
from api.devtools.whatsapp_provider_sim import encode, new_message_id, sign
from api.engine.dispatch import get_senders, wait_for_scheduled_turns
from api.engine.texts import ENGINE_DOWN_REPLY, OPT_OUT_CONFIRMATION
from api.outbox import service as outbox_service
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.worker import deliver_due
from api.storage import store_blob
from api.templates.service import get_template, render
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.fixtures.twilio.harness import eventually, new_phone, service_app
from tests.helpers.whatsapp_providers import (
    PROVIDERS,
    ProviderStack,
    load_payload,
    provider_stack,
)

pytestmark = pytest.mark.integration

JPEG = bytes.fromhex("ffd8ffe000104a46494600010100000100010000ffdb") + b"\x00" * 64 + b"\xff\xd9"


@pytest.fixture(scope="module", params=PROVIDERS)
async def stack(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[ProviderStack]:
    async with provider_stack(request.param, callback_delay=0.05) as running:
        yield running


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_service, "backoff_seconds", lambda attempt: 0.0)


async def stored(provider_id: str) -> list[Message]:
    async with unit_of_work() as session:
        return list(
            await session.scalars(
                sa.select(Message).where(
                    Message.channel == Channel.WHATSAPP, Message.provider_id == provider_id
                )
            )
        )


async def conversation_of(message_id: int) -> Conversation:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        return conversation


async def write(stack: ProviderStack, phone: str, name: str = "message_text", **kw: Any) -> Message:
    """The infringer writes (a fixture payload, fresh id and phone); returns the stored message."""
    message_id = new_message_id(stack.provider, inbound=True, phone=phone)
    response = await stack.post(
        load_payload(stack.provider, name, phone=phone, message_id=message_id, **kw)
    )
    assert response.status_code == 200, response.text
    await wait_for_scheduled_turns()
    found = await stored(message_id)
    assert len(found) == 1
    return found[0]


async def outbound_of(conversation_id: int) -> list[Message]:
    async with unit_of_work() as session:
        return list(
            await session.scalars(
                sa.select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.direction == Direction.OUTBOUND,
                )
                .order_by(Message.id)
            )
        )


async def message_row(message_id: int) -> Message:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def queue_text(conversation_id: int, text: str) -> Message:
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        queued = await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(author=AuthorKind.ANALYST, texts=(text,)),
            actor=Actor.system(),
        )
        return queued[0]


async def outbox_of(message_id: int) -> OutboxItem:
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
        )
        assert item is not None
        return item


async def test_a_message_is_stored_once_and_the_reply_leaves_through_its_provider_and_number(
    stack: ProviderStack,
) -> None:
    phone = new_phone()
    message_id = new_message_id(stack.provider, inbound=True, phone=phone)
    payload = load_payload(stack.provider, "message_text", phone=phone, message_id=message_id)

    first = await stack.post(payload)
    await wait_for_scheduled_turns()
    replay = await stack.post(payload)

    assert first.status_code == replay.status_code == 200
    messages = await stored(message_id)
    assert len(messages) == 1
    assert messages[0].text == "Oi, recebi a notificação. Quero resolver."
    assert messages[0].meta is not None
    assert messages[0].meta["provider"] == stack.provider
    assert messages[0].meta["profile_name"] == "Maria Vendas"
    assert messages[0].raw is not None and messages[0].raw["provider"] == stack.provider
    conversation = await conversation_of(messages[0].id)
    assert (conversation.provider, conversation.provider_number) == (stack.provider, stack.number)
    # No Rasa in these tests: the turn answers that a person will reply — through this provider.
    sent = await stack.sim_messages(phone)
    assert [m["body"] for m in sent] == [ENGINE_DOWN_REPLY]
    replies = await outbound_of(conversation.id)
    # UltraMsg's send answers its own id; its acks name WhatsApp's (matched by referenceId),
    # and the first ack may already have arrived and put WhatsApp's id in its place.
    answered = (
        {str(sent[0]["seq"]), sent[0]["id"]} if stack.provider == "ultramsg" else {sent[0]["id"]}
    )
    assert len(replies) == 1 and replies[0].provider_id in answered
    outbox = await outbox_of(replies[0].id)
    assert outbox.payload["from"] == f"{stack.provider}:{stack.number}"


@pytest.mark.parametrize("forgery", ["missing", "wrong", "tampered"])
async def test_forged_or_missing_credentials_are_refused_and_nothing_is_stored(
    stack: ProviderStack, forgery: str
) -> None:
    message_id = new_message_id(stack.provider, inbound=True, phone="+5511999990000")
    payload = load_payload(stack.provider, "message_text", phone=new_phone(), message_id=message_id)
    body = encode(payload)
    cfg = stack.config
    path: str | None = None
    headers: dict[str, str] = {"Content-Type": "application/json"}
    if stack.provider == "meta":
        if forgery == "wrong":
            headers["X-Hub-Signature-256"] = sign(body, "not-the-app-secret")
        elif forgery == "tampered":
            headers["X-Hub-Signature-256"] = sign(body, cfg.app_secret)
            body = body.replace(b"Quero resolver", b"Pague na conta 123")
    elif stack.provider == "360dialog":
        if forgery == "wrong":
            headers[cfg.d360_header] = cfg.webhook_secret
            path = "/webhooks/360dialog/not-the-secret"
        elif forgery == "tampered":  # the right path, a wrong header
            headers[cfg.d360_header] = "not-the-secret"
    else:
        if forgery in ("wrong", "missing"):
            path = f"/webhooks/{stack.provider}/" + ("not-the-secret" if forgery == "wrong" else "")
        else:  # the right secret, an instance that is not ours
            body = body.replace(cfg.instance_id.encode(), b"3C0FFEE0000000000000000000000999")

    response = await stack.post(body, path=path, headers=headers)

    assert response.status_code in (403, 404, 405), response.text
    assert await stored(message_id) == []


async def test_media_is_fetched_after_the_acknowledgement_and_stored_by_hash(
    stack: ProviderStack,
) -> None:
    media = await stack.sim_media(JPEG, "image/jpeg", fail_first=1)
    message = await write(stack, new_phone(), "message_image", media_ref=media["ref"])

    assert message.text == "comprovante"

    async def attachment() -> Attachment | None:
        async with unit_of_work() as session:
            row = await session.scalar(
                sa.select(Attachment).where(Attachment.message_id == message.id)
            )
        if row is not None and row.media_state is MediaState.PENDING:
            # The first fetch met a 503: the worker's pass takes it again when it is due.
            async with unit_of_work() as session:
                await session.execute(
                    sa.update(Attachment)
                    .where(Attachment.id == row.id)
                    .values(fetch_next_at=utcnow())
                )
            await fetch_due_media(message_id=message.id)
            return None
        return row

    row = await eventually(attachment)
    assert row is not None and row.media_state is MediaState.STORED, row and row.refused_reason
    assert row.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert (await stack.sim_media_stats(media["id"]))["fetches"] == 2


async def test_statuses_out_of_order_never_move_a_message_back(stack: ProviderStack) -> None:
    phone = new_phone()
    message = await write(stack, phone)
    reply = (await outbound_of(message.conversation_id))[0]
    assert await eventually(lambda: _status_is(reply.id, DeliveryStatus.DELIVERED)), (
        "the simulator's sent and delivered statuses"
    )
    provider_id = (await stack.sim_messages(phone))[0]["id"]

    assert await stack.sim_status(provider_id, "sent") == 200  # late and older
    assert (await message_row(reply.id)).delivery_status is DeliveryStatus.DELIVERED
    assert await stack.sim_status(provider_id, "read") == 200
    assert await stack.sim_status(provider_id, "delivered") == 200
    assert (await message_row(reply.id)).delivery_status is DeliveryStatus.READ


async def _status_is(message_id: int, status: DeliveryStatus) -> bool:
    return (await message_row(message_id)).delivery_status is status


async def test_a_permanent_refusal_fails_the_message_on_the_timeline(
    stack: ProviderStack, no_backoff: None
) -> None:
    phone = new_phone()
    message = await write(stack, phone)
    await stack.sim_fault(status=400, code=131026, message="Receiver is incapable", to=phone)
    reply = await queue_text(message.conversation_id, "Olá, tudo bem?")

    await deliver_due(get_senders(), conversation_id=message.conversation_id)

    item = await outbox_of(reply.id)
    assert item.state is OutboxState.FAILED and item.attempts == 1
    assert (await message_row(reply.id)).delivery_status is DeliveryStatus.FAILED
    async with unit_of_work() as session:
        summaries = list(
            await session.scalars(
                sa.select(TimelineEntry.summary).where(
                    TimelineEntry.message_id == reply.id, TimelineEntry.kind == EntryKind.DELIVERY
                )
            )
        )
    assert len(summaries) == 1 and "erro permanente" in summaries[0]


async def test_a_rate_limit_is_retried_no_sooner_than_retry_after(stack: ProviderStack) -> None:
    phone = new_phone()
    message = await write(stack, phone)
    await stack.sim_fault(status=429, code=130429, retry_after="120", to=phone)
    reply = await queue_text(message.conversation_id, "Olá de novo")
    before = utcnow()

    await deliver_due(get_senders(), conversation_id=message.conversation_id)

    item = await outbox_of(reply.id)
    assert item.state is OutboxState.PENDING
    assert item.next_attempt_at >= before + dt.timedelta(seconds=119)
    assert [m for m in await stack.sim_messages(phone) if m["body"] == "Olá de novo"] == []


async def test_the_24_hour_window_is_ours_and_a_late_window_failure_reads_as_such(
    stack: ProviderStack,
) -> None:
    phone = new_phone()
    message = await write(stack, phone)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=25)
    with pytest.raises(WindowClosed):
        await queue_text(message.conversation_id, "Ainda está aí?")

    # An approved template may still go (the unofficial gateways send its text).
    template = get_template("retomada_conversa")
    variables = {"infringer_name": "Maria", "case_ref": "INF-2026-00001", "brand": "Acme"}
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        queued = await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(
                author=AuthorKind.ANALYST,
                template=TemplateUse(
                    name=template.name,
                    variables=variables,
                    rendered_text=render(template, variables),
                ),
            ),
            actor=Actor.system(),
        )
    if Provider(stack.provider).cloud_api:
        # Meta refuses a message outside the window later, as a failed status (131047).
        await stack.sim_fault(status=400, async_error=131047, to=phone)
    await deliver_due(get_senders(), conversation_id=message.conversation_id)

    sent = [m for m in await stack.sim_messages(phone) if m["body"] != ENGINE_DOWN_REPLY]
    assert len(sent) == 1
    if Provider(stack.provider).cloud_api:
        assert sent[0]["template"]["name"] == "retomada_conversa"
        assert sent[0]["template"]["language"] == {"code": "pt_BR"}
        params = sent[0]["template"]["components"][0]["parameters"]
        assert [p["text"] for p in params] == ["Maria", "INF-2026-00001", "Acme"]
        assert await eventually(lambda: _status_is(queued[0].id, DeliveryStatus.FAILED))
        async with unit_of_work() as session:
            summary = await session.scalar(
                sa.select(TimelineEntry.summary).where(
                    TimelineEntry.message_id == queued[0].id,
                    TimelineEntry.kind == EntryKind.DELIVERY,
                )
            )
        assert summary is not None and "131047" in summary
        assert "fora da janela de 24 horas" in summary
    else:
        assert sent[0]["body"] == render(template, variables)


async def test_opt_out_is_confirmed_through_the_provider_and_then_honoured(
    stack: ProviderStack,
) -> None:
    phone = new_phone()
    message_id = new_message_id(stack.provider, inbound=True, phone=phone)
    payload = load_payload(stack.provider, "message_text", phone=phone, message_id=message_id)
    body = encode(payload).replace("Oi, recebi a notificação. Quero resolver.".encode(), b"PARAR")
    assert (await stack.post(body)).status_code == 200
    await wait_for_scheduled_turns()

    sent = await stack.sim_messages(phone)
    assert [m["body"] for m in sent] == [OPT_OUT_CONFIRMATION]
    message = (await stored(message_id))[0]
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        assert contact is not None and contact.opted_out_at is not None
    with pytest.raises(ContactSuppressed):
        await queue_text(message.conversation_id, "Mais uma coisa")


async def test_meta_subscription_handshake(stack: ProviderStack) -> None:
    if stack.provider != "meta":
        pytest.skip("Meta's GET handshake")
    challenge = secrets.token_hex(8)
    ok = await stack.http.get(
        stack.service_url + "/webhooks/meta/whatsapp",
        params={
            "hub.mode": "subscribe",
            "hub.verify_token": "dev-meta-verify-token",
            "hub.challenge": challenge,
        },
    )
    bad = await stack.http.get(
        stack.service_url + "/webhooks/meta/whatsapp",
        params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": challenge},
    )
    assert (ok.status_code, ok.text) == (200, challenge)
    assert bad.status_code == 403


async def test_a_file_leaves_as_the_providers_media_message(stack: ProviderStack) -> None:
    phone = new_phone()
    message = await write(stack, phone)
    blob = store_blob(
        b"%PDF-1.4\n%\xe2\xe3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", "application/pdf"
    )
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        assert conversation is not None
        queued = await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(
                author=AuthorKind.ANALYST,
                texts=("Segue o boleto.",),
                attachments=(
                    OutboundAttachment(
                        storage_path=blob.path,
                        filename="boleto.pdf",
                        content_type="application/pdf",
                        sha256=blob.sha256,
                        size=blob.size,
                    ),
                ),
            ),
            actor=Actor.system(),
        )

    await deliver_due(get_senders(), conversation_id=message.conversation_id)

    sent = [m for m in await stack.sim_messages(phone) if m["type"] == "document"]
    assert len(sent) == 1
    assert sent[0]["media"]["link"] == public_media_url(blob.sha256)
    assert sent[0]["body"] == "Segue o boleto."
    assert sent[0]["media"]["filename"] == "boleto.pdf"
    assert (await message_row(queued[0].id)).provider_id is not None


def _connections_to(port: int) -> int:
    """Established TCP connections from this machine to 127.0.0.1:`port` (client side)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines)
                for line in lines:
                    fields = line.split()
                    remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                    if remote_port == port and fields[3] == "01":  # 01: ESTABLISHED
                        count += 1
        except FileNotFoundError:
            continue
    return count


async def test_a_stopping_service_closes_its_connections_to_the_provider(
    stack: ProviderStack,
) -> None:
    """The senders' kept-alive connections are closed when the app shuts down (they were
    left to the garbage collector)."""
    port = int(stack.sim_url.rsplit(":", 1)[1].split("/")[0])
    message = await write(stack, new_phone())
    reply = await queue_text(message.conversation_id, "Olá, tudo bem?")
    await deliver_due(get_senders(), conversation_id=message.conversation_id)
    assert (await outbox_of(reply.id)).state is OutboxState.DONE
    open_before = _connections_to(port)
    assert open_before >= 1  # the send's connection, kept alive

    app = service_app()
    async with app.router.lifespan_context(app):
        pass

    assert _connections_to(port) < open_before
