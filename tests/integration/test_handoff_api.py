"""The handoff API: every transition, conflicts and authorization, on the real database."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.analysts.models import Role
from api.app import create_app
from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel, Conversation, Holder, Message
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.engine.turns import process_conversation
from api.events.consumers import get_cursor
from api.events.service import get_events
from api.notifications.bus import MemoryBus, get_bus
from api.notifications.live import NAME as LIVE_NOTIFICATIONS
from api.outbox.models import OutboxItem
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = iter(range(20_000_000, 99_999_999, 104729))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def login(
    client: httpx.AsyncClient, role: Role = Role.ANALYST
) -> tuple[dict[str, str], int, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        email, analyst_id = analyst.email, analyst.id
    token = await client.post(
        "/api/v1/auth/token", data={"username": email, "password": "correct-horse"}
    )
    assert token.status_code == 200
    return {"Authorization": f"Bearer {token.json()['access_token']}"}, analyst_id, email


async def conversation_for_case(*, last_inbound_hours_ago: float = 1) -> tuple[int, int]:
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, phones=(phone,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
        )
        conversation.last_inbound_at = utcnow() - dt.timedelta(hours=last_inbound_hours_ago)
        return conversation.id, case.id


async def test_everything_needs_a_token(client: httpx.AsyncClient) -> None:
    conversation_id, case_id = await conversation_for_case()
    calls = [
        ("GET", "/api/v1/handoffs"),
        ("POST", f"/api/v1/conversations/{conversation_id}/claim"),
        ("POST", f"/api/v1/conversations/{conversation_id}/messages"),
        ("POST", f"/api/v1/conversations/{conversation_id}/notes"),
        ("POST", f"/api/v1/conversations/{conversation_id}/release"),
        ("POST", f"/api/v1/conversations/{conversation_id}/resolve"),
        ("POST", f"/api/v1/cases/{case_id}/status"),
        ("GET", "/api/v1/events"),
    ]
    for method, url in calls:
        response = await client.request(method, url, json={})
        assert response.status_code == 401, (method, url)


async def test_escalate_claim_conflict_reply_note_release(client: httpx.AsyncClient) -> None:
    conversation_id, _case_id = await conversation_for_case()
    ana, ana_id, _ = await login(client)
    bruno, _, _ = await login(client)
    supervisor, _, _ = await login(client, Role.SUPERVISOR)

    escalated = await client.post(
        f"/api/v1/conversations/{conversation_id}/escalate",
        json={"reason": "cliente pediu revisão"},
        headers=ana,
    )
    assert escalated.json()["holder"] == "waiting_human"
    waiting = (await client.get("/api/v1/handoffs?state=waiting", headers=bruno)).json()
    mine = [w for w in waiting if w["conversation_id"] == conversation_id]
    assert (
        mine and mine[0]["reason"] == "cliente pediu revisão" and mine[0]["channel"] == "whatsapp"
    )
    assert mine[0]["case_reference"].startswith("INF-")

    # Writing before claiming is refused.
    early = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "oi"}, headers=ana
    )
    assert early.status_code == 409

    assert (
        await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    ).status_code == 200
    second = await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=bruno)
    assert second.status_code == 409
    forbidden = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "oi"}, headers=bruno
    )
    assert forbidden.status_code == 403
    held = (await client.get("/api/v1/handoffs?state=mine", headers=ana)).json()
    assert [h["conversation_id"] for h in held if h["conversation_id"] == conversation_id]

    sent = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Olá, aqui é a Ana. Podemos conversar?"},
        headers=ana,
    )
    assert sent.status_code == 201, sent.text
    note = await client.post(
        f"/api/v1/conversations/{conversation_id}/notes",
        json={"text": "Infrator parece disposto a acordo."},
        headers=ana,
    )
    assert note.status_code == 201

    reassigned = await client.post(
        f"/api/v1/conversations/{conversation_id}/claim",
        json={"analyst_id": ana_id},
        headers=supervisor,
    )
    assert reassigned.status_code == 200

    released = await client.post(
        f"/api/v1/conversations/{conversation_id}/release",
        json={"note": "acordo em 3x"},
        headers=ana,
    )
    assert released.json()["holder"] == "bot"
    again = await client.post(f"/api/v1/conversations/{conversation_id}/release", headers=ana)
    assert again.status_code == 409

    async with unit_of_work() as session:
        message = await session.get(Message, sent.json()["id"])
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == sent.json()["id"])
        )
        entries = (
            await session.scalars(
                sa.select(TimelineEntry)
                .where(TimelineEntry.conversation_id == conversation_id)
                .order_by(TimelineEntry.id)
            )
        ).all()
    assert message is not None and message.author_kind == "analyst" and message.analyst_id == ana_id
    assert item is not None and item.payload["text"].startswith("Olá, aqui é a Ana")
    kinds = [(e.kind, e.actor_name is not None) for e in entries]
    assert (EntryKind.NOTE, True) in kinds
    assert [e.summary for e in entries if e.kind is EntryKind.HANDOFF][-1].startswith(
        "Conversa devolvida ao bot"
    )


async def test_an_analyst_cannot_reassign(client: httpx.AsyncClient) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    _, bruno_id, _ = await login(client)
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/claim", json={"analyst_id": bruno_id}, headers=ana
    )
    assert response.status_code == 403


async def test_free_text_after_24_hours_is_a_clear_422(client: httpx.AsyncClient) -> None:
    conversation_id, _ = await conversation_for_case(last_inbound_hours_ago=30)
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "oi"}, headers=ana
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "whatsapp_window_closed"
    both = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "oi", "template": "lembrete_prazo"},
        headers=ana,
    )
    assert both.status_code == 422


async def test_case_status_moves_and_illegal_moves(client: httpx.AsyncClient) -> None:
    _, case_id = await conversation_for_case()
    ana, _, _ = await login(client)
    illegal = await client.post(
        f"/api/v1/cases/{case_id}/status", json={"status": "PAGO"}, headers=ana
    )
    assert illegal.status_code == 409 and illegal.json()["error"]["code"] == "illegal_transition"
    legal = await client.post(
        f"/api/v1/cases/{case_id}/status", json={"status": "EM_NEGOCIACAO"}, headers=ana
    )
    assert legal.status_code == 200 and legal.json()["status"] == "EM_NEGOCIACAO"


async def test_resolve_closes_and_the_next_message_opens_a_new_conversation(
    client: httpx.AsyncClient,
) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    resolved = await client.post(f"/api/v1/conversations/{conversation_id}/resolve", headers=ana)
    assert resolved.json()["closed_at"] is not None
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        got = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SMafter{conversation_id}",
                sender=conversation.address,
                text="oi de novo",
                received_at=utcnow(),
                raw={},
            ),
        )
    assert got.conversation.id != conversation_id


async def test_the_bot_stays_silent_while_a_person_holds_the_conversation(
    client: httpx.AsyncClient,
) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SMheld{conversation_id}",
                sender=conversation.address,
                text="quanto é?",
                received_at=utcnow(),
                raw={},
            ),
        )
    await process_conversation(conversation_id, gateway=None)
    async with unit_of_work() as session:
        outbound = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id, Message.direction == "outbound")
        )
        conversation = await session.get(Conversation, conversation_id)
    assert outbound == 0
    assert conversation is not None and conversation.holder is Holder.HUMAN


async def test_events_are_published_after_commit_only(client: httpx.AsyncClient) -> None:
    bus = get_bus()
    assert isinstance(bus, MemoryBus)  # no REDIS_URL in the app settings under test
    received: list[dict[str, Any]] = []
    subscribed = asyncio.Event()
    probe = f"probe-{uuid.uuid4().hex}"
    conversation_id, _ = await conversation_for_case()

    async def listen() -> None:
        # Only this conversation's handoffs: a pass over earlier commits (this test's setup, an
        # earlier test) may still be publishing.
        async for event in bus.subscribe():
            if event.get("probe") == probe:
                subscribed.set()
            elif event.get("conversation_id") == conversation_id and str(
                event.get("kind")
            ).startswith("handoff."):
                received.append(event)
                return

    listener = asyncio.create_task(listen())
    try:
        # The listener is subscribed before anything is published: a probe made the round trip.
        await asyncio.sleep(0)
        await bus.publish({"type": "test.probe", "kind": "test.probe", "probe": probe})
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        ana, _, _ = await login(client)
        # A failing request (bad body) publishes nothing.
        bad = await client.post(
            f"/api/v1/conversations/{conversation_id}/escalate", json={"reason": ""}, headers=ana
        )
        assert bad.status_code == 422
        escalated = await client.post(
            f"/api/v1/conversations/{conversation_id}/escalate",
            json={"reason": "revisão"},
            headers=ana,
        )
        assert escalated.status_code == 200, escalated.text  # else no event to wait for
        assert escalated.json()["holder"] == "waiting_human"
        # The request's commit drained the live consumer before it answered, so the event is
        # normally here already; bounded, not timed, for a loaded CI.
        try:
            await asyncio.wait_for(listener, timeout=30)
        except TimeoutError:
            pytest.fail(await _why_no_live_event(conversation_id))
    finally:
        listener.cancel()
    # One shape for every live event (api/notifications/live.py), published by the
    # live-notifications consumer once the change has committed.
    assert received == [
        {
            "type": "handoff.requested",
            "event_id": received[0]["event_id"],
            "kind": "handoff.requested",
            "conversation_id": conversation_id,
            "case_id": received[0]["case_id"],
            "channel": "whatsapp",
            "actor_kind": "analyst",
            "occurred_at": received[0]["occurred_at"],
            "holder": "waiting_human",
            "reason": "revisão",
        }
    ]


async def _why_no_live_event(conversation_id: int) -> str:
    """Where the event stopped: not stored, stored but not passed by the live consumer's cursor
    (no pass reached it: the cursor row was locked by another pass, an older transaction still
    open held the stream's horizon back on PostgreSQL, or the pass failed — see the log), or
    passed but never received."""
    async with unit_of_work() as session:
        stored = await get_events(
            session, conversation_id=conversation_id, kinds=["handoff.requested"]
        )
        cursor = await get_cursor(session, LIVE_NOTIFICATIONS)
    return (
        f"no live handoff.requested for conversation {conversation_id} within 30 s; stored "
        f"(tx_id, id): {[(r.tx_id, r.id) for r in stored]}; {LIVE_NOTIFICATIONS} cursor "
        f"(tx_id, id): {cursor}"
    )


async def test_only_an_analyst_lifts_an_opt_out_and_messages_flow_again(
    client: httpx.AsyncClient,
) -> None:
    conversation_id, _ = await conversation_for_case()
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        assert contact is not None
        contact.opted_out_at = utcnow()
        contact_id = contact.id
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    refused = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "oi"}, headers=ana
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "contact_suppressed"
    anonymous = await client.post(
        f"/api/v1/contacts/{contact_id}/lift-opt-out", json={"reason": "pediu para voltar"}
    )
    assert anonymous.status_code == 401
    lifted = await client.post(
        f"/api/v1/contacts/{contact_id}/lift-opt-out",
        json={"reason": "infrator pediu para retomar o contato"},
        headers=ana,
    )
    assert lifted.status_code == 200 and lifted.json()["opted_out_at"] is None
    again = await client.post(
        f"/api/v1/contacts/{contact_id}/lift-opt-out", json={"reason": "de novo"}, headers=ana
    )
    assert again.status_code == 409
    sent = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages", json={"text": "oi"}, headers=ana
    )
    assert sent.status_code == 201


async def test_analysts_attach_files_and_providers_can_fetch_them(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    await client.post(f"/api/v1/conversations/{conversation_id}/claim", headers=ana)
    pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + b"x" * 100
    uploaded = await client.post(
        "/api/v1/attachments",
        files={"file": ("acordo.pdf", pdf, "application/octet-stream")},
        headers=ana,
    )
    assert uploaded.status_code == 201, uploaded.text
    blob = uploaded.json()
    assert blob["content_type"] == "application/pdf"  # sniffed, not the declared type
    sent = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={
            "text": "Segue o termo.",
            "attachments": [{"sha256": blob["sha256"], "filename": "termo.pdf"}],
        },
        headers=ana,
    )
    assert sent.status_code == 201, sent.text
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == sent.json()["id"])
        )
    assert item is not None
    (attachment,) = item.payload["attachments"]
    assert attachment["filename"] == "termo.pdf" and attachment["url"].endswith(blob["sha256"])
    media = await client.get(f"/media/{blob['sha256']}")
    assert media.status_code == 200 and media.content == pdf
    assert media.headers["x-content-type-options"] == "nosniff"
    assert (await client.get(f"/media/{'0' * 64}")).status_code == 404

    unknown = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"attachments": [{"sha256": "f" * 64, "filename": "x.pdf"}]},
        headers=ana,
    )
    assert unknown.status_code == 422
    monkeypatch.setenv("MAX_ATTACHMENT_BYTES", "50")
    from api.config import get_settings

    get_settings.cache_clear()
    try:
        big = await client.post(
            "/api/v1/attachments", files={"file": ("big.pdf", pdf, "application/pdf")}, headers=ana
        )
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"


async def test_a_follow_up_date_is_set_and_recorded(client: httpx.AsyncClient) -> None:
    conversation_id, _ = await conversation_for_case()
    ana, _, _ = await login(client)
    when = (utcnow() + dt.timedelta(days=3)).replace(microsecond=0)
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/follow-up",
        json={"at": when.isoformat()},
        headers=ana,
    )
    assert response.status_code == 200
    assert dt.datetime.fromisoformat(response.json()["follow_up_at"]) == when
    naive = await client.post(
        f"/api/v1/conversations/{conversation_id}/follow-up",
        json={"at": "2026-12-01T10:00:00"},
        headers=ana,
    )
    assert naive.status_code == 422
