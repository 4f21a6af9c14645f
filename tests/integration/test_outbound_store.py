"""Queuing an outbound message writes the message, its outbox row and the conversation's
last_outbound_at (api.conversations.outbound._store): on PostgreSQL in one statement, on SQLite
one by one — the same rows either way, in the caller's transaction."""

from __future__ import annotations

import itertools

import pytest
import sqlalchemy as sa

from api.conversations.models import AuthorKind, Channel, Conversation, DeliveryStatus, Message
from api.conversations.outbound import Outbound, do_queue_outbound
from api.db import unit_of_work, utcnow
from api.outbox.models import OutboxItem, OutboxState
from api.timeline.service import Actor
from tests.factories import make_whatsapp_conversation
from tests.helpers.queries import count_queries

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]
_seq = itertools.count(41_000_000, 7919)


async def whatsapp_conversation() -> tuple[int, int, str]:
    phone = f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        conversation = await make_whatsapp_conversation(session, phone=phone)
        assert conversation.case_id is not None
        return conversation.id, conversation.case_id, phone


async def test_a_queued_message_its_outbox_row_and_the_conversation_agree() -> None:
    conversation_id, case_id, phone = await whatsapp_conversation()
    before = utcnow()
    async with unit_of_work() as session:
        dialect = session.get_bind().dialect.name
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        with count_queries() as log:
            message = await do_queue_outbound(
                session,
                conversation=conversation,
                outbound=Outbound(text="Olá, Joana", meta={"origin": "teste"}),
                actor=Actor.bot(),
            )
        message_id = message.id
        assert conversation.last_outbound_at is not None
        assert conversation.last_outbound_at >= before
        told = conversation.last_outbound_at
    writes = [
        s
        for s in log.statements
        if s.startswith(("INSERT INTO messages", "WITH stored", "INSERT INTO outbox"))
        or s.startswith("UPDATE conversations SET last_outbound_at")
    ]
    assert len(writes) == (1 if dialect == "postgresql" else 3), log
    async with unit_of_work() as session:
        stored = await session.get(Message, message_id)
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
        )
        conversation = await session.get(Conversation, conversation_id)
    assert stored is not None and item is not None and conversation is not None
    assert (stored.conversation_id, stored.case_id, stored.channel) == (
        conversation_id,
        case_id,
        Channel.WHATSAPP,
    )
    assert (stored.author_kind, stored.delivery_status, stored.text) == (
        AuthorKind.BOT,
        DeliveryStatus.PENDING,
        "Olá, Joana",
    )
    assert stored.meta == {"origin": "teste"} and stored.handled_at is None
    assert (item.state, item.attempts, item.conversation_id) == (
        OutboxState.PENDING,
        0,
        conversation_id,
    )
    assert item.payload["to"] == phone and item.payload["text"] == "Olá, Joana"
    assert item.payload["meta"] == {"author_kind": "bot", "origin": "teste"}
    assert item.next_attempt_at <= utcnow() and item.locked_until is None
    assert conversation.last_outbound_at == told


async def test_a_failure_after_queuing_leaves_no_message_and_no_outbox_row() -> None:
    conversation_id, _, _ = await whatsapp_conversation()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            await do_queue_outbound(
                session, conversation=conversation, outbound=Outbound(text="x"), actor=Actor.bot()
            )
            raise Boom
    async with unit_of_work() as session:
        messages = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id)
        )
        items = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.conversation_id == conversation_id)
        )
        conversation = await session.get(Conversation, conversation_id)
    assert (messages, items) == (0, 0)
    assert conversation is not None and conversation.last_outbound_at is None
