"""Twilio's WhatsApp message webhook, end to end on the real database: signed stored forms and
the Twilio simulator posting to the service over HTTP; media fetched from the simulator."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from urllib.parse import quote_plus

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.whatsapp_twilio.adapter import (
    MalformedWebhook,
    parse_form_body,
    parse_message_form,
    public_url,
    verify_signature,
)
from api.config import get_settings
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Conversation,
    Direction,
    Holder,
    Message,
)
from api.db import unit_of_work
from api.devtools.twilio_simulator import sign
from api.engine import dispatch
from api.engine.dispatch import wait_for_scheduled_turns
from api.engine.texts import ENGINE_DOWN_REPLY
from api.outbox.models import OutboxItem, OutboxState
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_case, make_infringer
from tests.fixtures.twilio.harness import (
    AUTH_TOKEN,
    MESSAGE_PATH,
    TwilioStack,
    load_form,
    new_phone,
    new_sid,
    twilio_stack,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def running_stack(database_url: str) -> AsyncIterator[TwilioStack]:
    async with twilio_stack() as running:
        yield running


@pytest.fixture
async def stack(running_stack: TwilioStack) -> AsyncIterator[TwilioStack]:
    yield running_stack
    await wait_for_scheduled_turns()  # no test leaves a bot turn running into the next


@pytest.fixture
def scheduled(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Conversation ids the webhook scheduled a bot turn for (the real scheduler still runs)."""
    calls: list[int] = []
    real = dispatch.schedule_turns

    def record(conversation_id: int) -> None:
        calls.append(conversation_id)
        real(conversation_id)

    monkeypatch.setattr(dispatch, "schedule_turns", record)
    return calls


@pytest.fixture
def small_attachments(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setenv("MAX_ATTACHMENT_BYTES", "1024")
    get_settings.cache_clear()
    yield 1024
    monkeypatch.undo()
    get_settings.cache_clear()


def png(width: int = 4) -> bytes:
    """A real PNG (so the type is sniffed from the bytes, not taken from the form)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80\x20\x10" * width for _ in range(width))
    header = struct.pack(">IIBBBBB", width, width, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def stored(sid: str) -> list[Message]:
    async with unit_of_work() as session:
        rows = await session.scalars(sa.select(Message).where(Message.provider_id == sid))
        return list(rows)


async def attachments_of(message_id: int) -> list[Attachment]:
    """The message's attachments once the media fetched after the acknowledgement settled."""
    await wait_for_scheduled_turns()
    async with unit_of_work() as session:
        rows = await session.scalars(
            sa.select(Attachment).where(Attachment.message_id == message_id)
        )
        return list(rows)


# --- the adapter, on the stored forms -------------------------------------------------------


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_a_form_without_sid_or_sender_is_malformed(missing: str) -> None:
    form = load_form("message_text")
    form.pop(missing)
    if missing == "MessageSid":
        form.pop("SmsMessageSid")
    with pytest.raises(MalformedWebhook):
        parse_message_form({k: [v] for k, v in form.items()})


def test_signature_covers_url_and_sorted_params() -> None:
    form = load_form("message_text")
    url = "https://crm.exemplo.com.br/webhooks/twilio/whatsapp?x=1"
    signature = sign(url, form, AUTH_TOKEN)
    # The body as it arrives on the wire, in another field order: the signature sorts the params.
    wire = "&".join(f"{k}={quote_plus(v)}" for k, v in reversed(form.items())).encode()
    params = parse_form_body(wire)
    assert verify_signature(url, params, signature, AUTH_TOKEN)
    assert verify_signature(
        url.replace("https://crm.exemplo.com.br", "https://crm.exemplo.com.br:443"),
        params,
        signature,
        AUTH_TOKEN,
    )
    assert not verify_signature(url.replace("x=1", "x=2"), params, signature, AUTH_TOKEN)
    assert not verify_signature(url, {**params, "Body": ["outro texto"]}, signature, AUTH_TOKEN)
    assert not verify_signature(url, params, signature, "other-token")
    assert not verify_signature(url, params, None, AUTH_TOKEN)


def test_public_url_is_the_base_plus_path_or_what_the_proxy_says() -> None:
    base = "https://crm.exemplo.com.br/tratativa/"
    assert (
        public_url(path="/webhooks/twilio/whatsapp", query="", public_base_url=base)
        == "https://crm.exemplo.com.br/tratativa/webhooks/twilio/whatsapp"
    )
    assert (
        public_url(
            path="/webhooks/twilio/status",
            query="a=1",
            public_base_url="http://127.0.0.1:8000",
            headers={"x-forwarded-proto": "https", "x-forwarded-host": "abc.ngrok.app, proxy"},
        )
        == "https://abc.ngrok.app/webhooks/twilio/status?a=1"
    )


# --- the webhook over HTTP -------------------------------------------------------------------


@pytest.mark.parametrize("forgery", ["missing", "wrong_token", "tampered_body", "other_url"])
async def test_a_forged_or_missing_signature_is_refused_and_nothing_stored(
    stack: TwilioStack, forgery: str
) -> None:
    sid = new_sid()
    form = load_form("message_text", MessageSid=sid, From=f"whatsapp:{new_phone()}")
    url = stack.public_base_url + MESSAGE_PATH
    if forgery == "missing":
        response = await stack.http.post(stack.service_url + MESSAGE_PATH, data=form)
    elif forgery == "wrong_token":
        response = await stack.post_signed(MESSAGE_PATH, form, token="not-the-auth-token")
    elif forgery == "tampered_body":
        signature = sign(url, form, AUTH_TOKEN)
        form["Body"] = "quero pagar para a conta 123"
        response = await stack.post_signed(MESSAGE_PATH, form, signature=signature)
    else:
        response = await stack.post_signed(
            MESSAGE_PATH, form, signed_url="https://evil.example/webhooks/twilio/whatsapp"
        )
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "permission_denied"
    assert await stored(sid) == []


async def test_a_text_is_stored_once_linked_to_the_case_and_a_replay_changes_nothing(
    stack: TwilioStack, scheduled: list[int]
) -> None:
    registered = new_phone()  # with the ninth digit; WhatsApp shows the old form without it
    without_ninth = registered[:5] + registered[6:]
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(registered,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
        case_id = case.id
    sid = new_sid()
    form = load_form("message_text", MessageSid=sid, From=f"whatsapp:{without_ninth}")

    first = await stack.post_signed(MESSAGE_PATH, form)
    await wait_for_scheduled_turns()
    replay = await stack.post_signed(MESSAGE_PATH, form)

    assert first.status_code == 200, first.text
    assert first.headers["content-type"].startswith("text/xml")
    assert "<Response/>" in first.text
    assert (replay.status_code, replay.text) == (first.status_code, first.text)
    messages = await stored(sid)
    assert len(messages) == 1
    message = messages[0]
    assert message.text == form["Body"]
    assert message.case_id == case_id
    assert message.meta is not None and message.meta["profile_name"] == "Carlos Souza"
    assert scheduled == [message.conversation_id]

    await wait_for_scheduled_turns()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
        linked = await session.get(Case, case_id)
        replies = list(
            await session.scalars(
                sa.select(Message).where(
                    Message.conversation_id == message.conversation_id,
                    Message.direction == Direction.OUTBOUND,
                )
            )
        )
        outbox = list(
            await session.scalars(
                sa.select(OutboxItem).where(OutboxItem.conversation_id == message.conversation_id)
            )
        )
        entries = await session.scalar(
            sa.select(sa.func.count())
            .select_from(TimelineEntry)
            .where(TimelineEntry.message_id == message.id, TimelineEntry.kind == EntryKind.MESSAGE)
        )
    assert conversation is not None and linked is not None
    assert linked.status is CaseStatus.EM_ATENDIMENTO
    # RASA_URL is not set in tests: the bot loop hands the conversation to a person, once.
    assert conversation.holder is Holder.WAITING_HUMAN
    assert conversation.handoff_reason == "Rasa não configurado"
    assert [(r.author_kind, r.text) for r in replies] == [(AuthorKind.SYSTEM, ENGINE_DOWN_REPLY)]
    # The process that ran the turn delivers its reply at once (no wait for the worker).
    assert [(o.message_id, o.state) for o in outbox] == [(replies[0].id, OutboxState.DONE)]
    assert entries == 1


async def test_a_photo_is_fetched_with_twilio_credentials_and_stored_by_hash(
    stack: TwilioStack,
) -> None:
    data = png()
    media = await stack.sim_media(data, "image/jpeg")  # declared wrong: the bytes decide
    sid = new_sid("MM")
    form = load_form(
        "message_image_caption",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        MediaUrl0=media["url"],
    )
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 200, response.text

    (message,) = await stored(sid)
    assert message.text == "segue o comprovante do pix"
    (attachment,) = await attachments_of(message.id)
    assert attachment.refused_reason is None
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    assert attachment.content_type == "image/png"
    assert attachment.size == len(data)
    assert attachment.storage_path is not None
    assert (get_settings().storage_dir / attachment.storage_path).read_bytes() == data
    stats = (await stack.http.get(f"{stack.sim_url}/_sim/media/{media['id']}/stats")).json()
    assert (stats["fetches"], stats["unauthorized"]) == (1, 0)


async def test_a_voice_note_sent_through_the_simulator_is_stored_with_its_audio(
    stack: TwilioStack,
) -> None:
    ogg = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x1eOpusHead" + b"\x00" * 64
    phone = new_phone()
    response = await stack.http.post(
        f"{stack.sim_url}/_sim/inbound",
        json={
            "from": phone,
            "media": [{"content_type": "audio/ogg", "data_b64": base64.b64encode(ogg).decode()}],
        },
    )
    result = response.json()
    assert response.status_code == 200 and result["status"] == 200, result
    (message,) = await stored(result["message_sid"])
    assert message.text == "[áudio]"
    (attachment,) = await attachments_of(message.id)
    assert attachment.sha256 == hashlib.sha256(ogg).hexdigest()
    assert attachment.content_type == "audio/ogg"


async def test_oversized_media_is_refused_with_a_reason_and_the_message_kept(
    stack: TwilioStack, small_attachments: int
) -> None:
    big = png() + os.urandom(4 * small_attachments)
    media = await stack.sim_media(big, "image/png")
    sid = new_sid("MM")
    form = load_form(
        "message_image_caption",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        MediaUrl0=media["url"],
    )
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 200, response.text
    (message,) = await stored(sid)
    (attachment,) = await attachments_of(message.id)
    assert attachment.sha256 is None and attachment.storage_path is None
    assert attachment.refused_reason is not None
    assert f"excede o limite de {small_attachments} bytes" in attachment.refused_reason


async def test_unreachable_media_is_recorded_as_refused_and_the_message_kept(
    stack: TwilioStack,
) -> None:
    sid = new_sid("MM")
    form = load_form(
        "message_voice_note",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        MediaUrl0=f"{stack.sim_url}/_sim/media/ME{'0' * 32}",
    )
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 200, response.text
    (message,) = await stored(sid)
    (attachment,) = await attachments_of(message.id)
    assert attachment.refused_reason == "falha ao baixar a mídia (HTTP 404)"
    assert attachment.content_type == "audio/ogg"


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("message_location", "[localização: -23.5613,-46.6565 MASP Av. Paulista"),
        ("message_button_reply", "Quero negociar"),
    ],
)
async def test_non_text_messages_are_stored_as_text(
    stack: TwilioStack, fixture: str, expected: str
) -> None:
    sid = new_sid()
    form = load_form(fixture, MessageSid=sid, From=f"whatsapp:{new_phone()}")
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 200, response.text
    (message,) = await stored(sid)
    assert message.text.startswith(expected)


async def test_a_signed_but_malformed_form_is_a_400_and_nothing_is_stored(
    stack: TwilioStack,
) -> None:
    sid = new_sid()
    form = load_form("message_text", MessageSid=sid)
    form.pop("From")
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_webhook"
    assert await stored(sid) == []


async def test_the_signature_is_checked_against_the_public_url(
    stack: TwilioStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLIC_BASE_URL", "https://crm.exemplo.com.br")
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1")  # the tunnel's forwarded name is believed
    get_settings.cache_clear()
    try:
        local = load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{new_phone()}")
        public = load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{new_phone()}")
        tunnel = load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{new_phone()}")
        signed_local = await stack.post_signed(
            MESSAGE_PATH, local, signed_url=stack.service_url + MESSAGE_PATH
        )
        signed_public = await stack.post_signed(
            MESSAGE_PATH, public, signed_url="https://crm.exemplo.com.br" + MESSAGE_PATH
        )
        await wait_for_scheduled_turns()  # one writer at a time on SQLite (see the burst test)
        through_tunnel = await stack.post_signed(
            MESSAGE_PATH,
            tunnel,
            signed_url="https://abc123.ngrok.app" + MESSAGE_PATH,
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "abc123.ngrok.app"},
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert signed_local.status_code == 403
    assert signed_public.status_code == 200, signed_public.text
    assert through_tunnel.status_code == 200, through_tunnel.text
    assert await stored(local["MessageSid"]) == []
    assert len(await stored(public["MessageSid"])) == 1


async def test_a_burst_from_one_phone_is_stored_whole_while_turns_run(
    stack: TwilioStack,
) -> None:
    phone = new_phone()
    forms = [
        load_form("message_text", MessageSid=new_sid(), From=f"whatsapp:{phone}", Body=f"msg {n}")
        for n in range(6)
    ]
    responses = [await stack.post_signed(MESSAGE_PATH, forms[0])]
    responses += await asyncio.gather(*(stack.post_signed(MESSAGE_PATH, f) for f in forms[1:]))
    await wait_for_scheduled_turns()
    assert [r.status_code for r in responses] == [200] * len(forms)
    for form in forms:
        assert len(await stored(form["MessageSid"])) == 1


async def test_a_nul_character_in_a_signed_form_is_dropped_and_the_message_stored(
    stack: TwilioStack,
) -> None:
    """PostgreSQL cannot store U+0000 in text: the webhook answered 500 and Twilio retried a
    message that could never be stored. The character carries nothing: it is dropped, after the
    signature (computed over the form as sent) was checked."""
    sid = new_sid()
    form = load_form(
        "message_text",
        MessageSid=sid,
        From=f"whatsapp:{new_phone()}",
        Body="quero\x00 pagar",
        ProfileName="Car\x00los",
    )
    response = await stack.post_signed(MESSAGE_PATH, form)
    assert response.status_code == 200, response.text
    (message,) = await stored(sid)
    assert message.text == "quero pagar"
    assert message.meta is not None and message.meta["profile_name"] == "Carlos"
