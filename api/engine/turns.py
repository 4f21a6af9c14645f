"""The bot loop: pending inbound messages of a conversation go to Rasa one at a time; the
reading and the replies are stored, and the replies queued, in one transaction per turn.

One turn at a time per conversation across processes: a short lease on the conversation row
(UPDATE … WHERE lease expired), not a lock held while Rasa thinks (Rasa's actions write to the
same rows).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from api.contacts.models import ContactPoint
from api.conversations.models import (
    Attachment,
    Channel,
    Conversation,
    Direction,
    Holder,
    MediaState,
    Message,
)
from api.conversations.outbound import (
    ContactSuppressed,
    OutboundMessage,
    WindowClosed,
    author_of,
    do_queue_message,
)
from api.conversations.service import sender_id_for_id
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.engine.client import EngineTurn, EngineUnavailable, RasaGateway
from api.engine.commands import catch_up_owed_clause, do_catch_up, do_queue_engine_command
from api.engine.models import EngineCommandKind
from api.engine.texts import ENGINE_DOWN_REPLY, OPT_OUT_CONFIRMATION, is_opt_out_keyword
from api.events import EventActorKind, about, emit
from api.events import kinds as ev
from api.handoff.service import do_request_handoff
from api.outbox.senders import Envelope
from api.outbox.service import claim_envelopes
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

log = logging.getLogger(__name__)
LEASE = dt.timedelta(seconds=90)
# Sends outbox rows the turn's own transaction claimed (leased), once it has committed.
Deliver = Callable[[Sequence[tuple[int, Envelope]]], Awaitable[object]]


@dataclass(frozen=True)
class PendingTurn:
    message_id: int
    text: str
    channel: str
    conversation_id: int
    case_id: int | None
    holder: Holder
    sender_id: str
    # Rasa is owed a pause or resume (or may be): catch up before the turn (engine.commands).
    catch_up: bool = True


async def _claim_next(
    maker: async_sessionmaker[AsyncSession], conversation_id: int
) -> tuple[str, PendingTurn] | None:
    """Take the conversation's lease and its oldest ready message in one transaction; with
    nothing ready the lease is given back in that same transaction. None: another process
    holds the conversation, or nothing is ready."""
    token = str(uuid.uuid4())
    now = utcnow()
    async with unit_of_work(maker) as session:
        claimed = await session.scalar(
            _claim_statement(),
            {
                "p_conversation_id": conversation_id,
                "p_now": now,
                "p_token": token,
                "p_until": now + LEASE,
            },
        )
        if claimed is None:
            return None
        turn = await _pending_or_release(session, conversation_id, token)
    return (token, turn) if turn is not None else None


async def _renew(session: AsyncSession, conversation_id: int, token: str) -> bool:
    """Renew our lease (row-locking the conversation until commit); False if it was lost."""
    renewed = await session.scalar(
        _renew_statement(),
        {"p_conversation_id": conversation_id, "p_token": token, "p_until": utcnow() + LEASE},
    )
    return renewed is not None


async def _pending_or_release(
    session: AsyncSession, conversation_id: int, token: str
) -> PendingTurn | None:
    """The next turn to run under our lease, or None after giving the lease back.

    Race-free without a second look: the caller's UPDATE holds the conversation's row lock
    until commit, so a message committed before this read is seen here, and whoever commits
    one after it and then tries to claim waits on that lock and finds the lease free."""
    turn = await _oldest_ready(session, conversation_id)
    if turn is None:
        await session.execute(
            _release_statement(), {"p_conversation_id": conversation_id, "p_token": token}
        )
        return None
    return turn


async def _next_or_release(
    session: AsyncSession, conversation_id: int, token: str
) -> PendingTurn | None:
    """As `_pending_or_release`, once our lease is renewed (the row locked): most turns find
    nothing more to do, so the lease is first given back on the condition that no message is
    ready, in one statement; only when one is does the turn read it. The condition is read
    under the row lock, so what it misses was committed after it and its claim finds the lease
    free once we commit."""
    released = await session.scalar(
        _release_unless_ready_statement(),
        {"p_conversation_id": conversation_id, "p_token": token},
    )
    if released is not None:
        return None
    return await _pending_or_release(session, conversation_id, token)


async def _release(
    maker: async_sessionmaker[AsyncSession], conversation_id: int, token: str
) -> None:
    async with unit_of_work(maker) as session:
        await session.execute(
            _release_statement(), {"p_conversation_id": conversation_id, "p_token": token}
        )


async def _queue(
    session: AsyncSession,
    conversation: Conversation,
    texts: list[str],
    actor: Actor,
    *,
    reply_to: int | None = None,
    allow_suppressed: bool = False,
) -> None:
    """Queue the turn's messages; the channel dresses them (e-mail: one threaded mail with
    greeting and signature answering `reply_to`; WhatsApp: one message each, in parts)."""
    try:
        await do_queue_message(
            session,
            conversation=conversation,
            message=OutboundMessage(
                author=author_of(actor), texts=tuple(texts), reply_to_message_id=reply_to
            ),
            actor=actor,
            allow_suppressed=allow_suppressed,
        )
    except (ContactSuppressed, WindowClosed) as exc:
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=Actor.system(),
            case_id=conversation.case_id,
            conversation_id=conversation.id,
            summary=f"Resposta não enviada: {exc.message}",
            data={"code": exc.code},
        )


async def _finish(
    maker: async_sessionmaker[AsyncSession],
    turn: PendingTurn,
    token: str,
    *,
    result: EngineTurn | None,
    failure: str | None,
    opt_out: bool,
    deliver: Deliver | None = None,
) -> PendingTurn | None:
    """Record the turn; in the same transaction, take the next one (or give the lease back).

    With `deliver`, the same transaction also claims the conversation's due outbox rows (the
    replies just queued among them) and `deliver` sends them once it has committed: no
    transaction of its own to claim them. A crash before they are sent leaves them leased; the
    worker sends them when the lease ends, as after any claim."""
    claimed: list[tuple[int, Envelope]] = []
    async with unit_of_work(maker) as session:
        renewed = await _record(
            session, turn, token, result=result, failure=failure, opt_out=opt_out
        )
        if deliver is not None:
            claimed = await claim_envelopes(session, conversation_id=turn.conversation_id)
        if renewed:
            following = await _next_or_release(session, turn.conversation_id, token)
        else:
            following = None  # the lease expired and another process took the conversation
    if claimed and deliver is not None:
        await deliver(claimed)
    return following


@dataclass(frozen=True)
class _Loaded:
    """What the finish's first statement read. The contact point is held here: the session's
    identity map keeps it only while something refers to it, and queuing the reply asks for it
    (opt-out) without another round trip."""

    conversation: Conversation
    contact: ContactPoint
    renewed: bool  # the lease was still ours (renewed now)


async def _renew_and_load(session: AsyncSession, conversation_id: int, token: str) -> _Loaded:
    """The finish's first step: renew our lease and read the conversation with its contact
    point.

    Read afresh by this transaction (the finish's own session): holder and case as the actions,
    which ran in their own transactions, left them. The contact point comes in the same
    statement: queuing a reply checks it (opt-out), and finds it in the session. On PostgreSQL
    the renewal and the read are one statement, which takes the conversation's row lock from
    the start of the finish until it commits (the queued reply's last_outbound_at and the final
    release took it anyway); the release's condition, read later in the transaction, still sees
    every message committed before it."""
    params = {"p_conversation_id": conversation_id, "p_token": token, "p_until": utcnow() + LEASE}
    if session.get_bind().dialect.name == "postgresql":
        row = (await session.execute(_renew_and_load_statement(), params)).first()
        if row is not None:
            return _Loaded(row[0], row[1], renewed=True)
        renewed = False  # lost: another process holds the conversation; read it all the same
    else:
        renewed = await _renew(session, conversation_id, token)
    found = (
        await session.execute(_conversation_statement(), {"p_conversation_id": conversation_id})
    ).first()
    assert found is not None
    return _Loaded(found[0], found[1], renewed=renewed)


async def _record(
    session: AsyncSession,
    turn: PendingTurn,
    token: str,
    *,
    result: EngineTurn | None,
    failure: str | None,
    opt_out: bool,
) -> bool:
    """Record the turn's outcome; returns whether our lease was renewed (`_renew_and_load`)."""
    loaded = await _renew_and_load(session, turn.conversation_id, token)
    conversation, renewed = loaded.conversation, loaded.renewed
    nlu = result.nlu if result is not None else None
    params: dict[str, object] = {
        "p_message_id": turn.message_id,
        "p_now": utcnow(),
        "p_case_id": conversation.case_id,
    }
    if nlu is not None:
        params |= {
            "p_intent": nlu.intent,
            "p_confidence": nlu.confidence,
            "p_entities": nlu.entities,
        }
    handled = await session.scalar(_handled_statement(with_reading=nlu is not None), params)
    if handled is None:
        return renewed  # another worker finished it (lease expired mid-turn); never answer twice
    if result is not None and result.nlu is not None:
        emit(
            session,
            ev.BotTurnRead(
                **about(conversation=conversation, actor=EventActorKind.BOT),
                message_id=turn.message_id,
                intent=result.nlu.intent,
                confidence=result.nlu.confidence,
            ),
        )
    bot = Actor.bot()
    if opt_out:
        contact = await session.get(ContactPoint, conversation.contact_point_id)
        if contact is not None and contact.opted_out_at is None:
            contact.opted_out_at = utcnow()
            contact.opt_out_reason = f"palavra-chave: {turn.text.strip()[:40]}"
            emit(
                session,
                ev.ContactOptedOut(
                    **about(conversation=conversation, actor=Actor.infringer()),
                    contact_id=contact.id,
                    reason=contact.opt_out_reason,
                ),
            )
            await _queue(session, conversation, [OPT_OUT_CONFIRMATION], bot, allow_suppressed=True)
        await do_request_handoff(
            session, conversation=conversation, reason="opt-out: revisar contato", actor=bot
        )
        return renewed
    if failure is not None:
        if await do_request_handoff(
            session, conversation=conversation, reason=failure, actor=Actor.system()
        ):
            await _queue(
                session,
                conversation,
                [ENGINE_DOWN_REPLY],
                Actor.system(),
                reply_to=turn.message_id,
            )
        return renewed
    assert result is not None
    if turn.holder is not Holder.BOT:
        if result.messages:
            # The bot must never speak while a person holds the conversation: make Rasa
            # agree, durably (a pause Rasa misses now is retried until it has it).
            await do_queue_engine_command(
                session, conversation=conversation, kind=EngineCommandKind.PAUSE
            )
        return renewed  # a person holds it: the reading is kept, the bot says nothing
    texts = [reply.text for reply in result.messages if reply.text]
    if texts:
        # The opt-out confirmation is the one message allowed to a suppressed contact.
        await _queue(
            session, conversation, texts, bot, reply_to=turn.message_id, allow_suppressed=True
        )
    if result.paused and conversation.holder is Holder.BOT:
        await do_request_handoff(
            session, conversation=conversation, reason="bot pausou a conversa", actor=bot
        )
    return renewed


async def _handle(
    maker: async_sessionmaker[AsyncSession],
    gateway: RasaGateway | None,
    turn: PendingTurn,
    token: str,
    deliver: Deliver | None,
) -> PendingTurn | None:
    """Run one turn; returns the next one of the conversation (None: the lease is given back)."""
    finish = functools.partial(_finish, maker, turn, token, deliver=deliver)
    if is_opt_out_keyword(turn.text):
        return await finish(result=None, failure=None, opt_out=True)
    if gateway is None:
        return await finish(result=None, failure="Rasa não configurado", opt_out=False)
    try:
        # Rasa first hears the pauses and resumes still owed to it, so its tracker agrees with
        # the holder before it reads this turn.
        if turn.catch_up:
            await do_catch_up(gateway, conversation_id=turn.conversation_id)
        result = await gateway.send_turn(
            sender=turn.sender_id,
            text=turn.text,
            message_id=f"msg-{turn.message_id}",
            channel=turn.channel,
            metadata={"conversation_id": turn.conversation_id, "case_id": turn.case_id},
        )
    except EngineUnavailable as exc:
        log.warning("turn %s: %s", turn.message_id, exc.message)
        return await finish(result=None, failure=exc.message, opt_out=False)
    return await finish(result=result, failure=None, opt_out=False)


async def process_conversation(
    conversation_id: int,
    *,
    gateway: RasaGateway | None,
    maker: async_sessionmaker[AsyncSession] | None = None,
    deliver: Deliver | None = None,
) -> int:
    """Handle every pending inbound message of a conversation, oldest first. Returns how many;
    0 when another process holds the conversation (it will handle them).

    Two transactions per turn besides Rasa's: the claim (lease and first message) and the
    finish (the turn's effects, then the next message or the lease given back). With
    `deliver`, each turn's replies are claimed by its finish and sent before the next turn."""
    maker = maker or get_sessionmaker()
    claimed = await _claim_next(maker, conversation_id)
    if claimed is None:
        return 0
    token, next_turn = claimed
    handled = 0
    try:
        turn: PendingTurn | None = next_turn
        while turn is not None:
            turn = await _handle(maker, gateway, turn, token, deliver)
            handled += 1
    except BaseException:
        # The turn failed before its finish committed: free the conversation for the next
        # attempt (the worker's sweeper, or the next message) instead of waiting out the lease.
        with contextlib.suppress(Exception):
            await _release(maker, conversation_id, token)
        raise
    return handled


async def _oldest_ready(session: AsyncSession, conversation_id: int) -> PendingTurn | None:
    """The oldest unhandled inbound message as a turn (with its conversation's case and holder,
    and whether Rasa is owed a catch-up first, in the same query), unless its media are still
    being fetched: turns keep their order, so the whole conversation waits for it (the fetcher
    schedules it)."""
    row = (
        await session.execute(_oldest_ready_statement(), {"conversation_id": conversation_id})
    ).first()
    if row is None or row[5]:
        return None
    message_id, text, channel, case_id, holder, _, owed = row
    return PendingTurn(
        message_id=message_id,
        text=text,
        channel=str(channel),
        conversation_id=conversation_id,
        case_id=case_id,
        holder=holder,
        sender_id=sender_id_for_id(conversation_id),
        catch_up=bool(owed),
    )


# The statements of every turn, built once (building them cost more CPU than running them):
# each call binds its values. The UPDATEs are Core statements on the tables: the session still
# autoflushes before them, and they skip the ORM's per-execution copy of the statement (which
# made SQLAlchemy compute the cache key again each time). Bound names never equal a column's:
# a parameter named like a column would be SET too.
_CONVERSATIONS = cast(sa.Table, Conversation.__table__)
_MESSAGES = cast(sa.Table, Message.__table__)


@functools.cache
def _conversation_statement() -> sa.Select[Conversation, ContactPoint]:
    """Conversation `p_conversation_id` and its contact point, in one statement."""
    return (
        sa.select(Conversation, ContactPoint)
        .join(ContactPoint, ContactPoint.id == Conversation.contact_point_id)
        .where(Conversation.id == sa.bindparam("p_conversation_id", type_=sa.Integer))
    )


@functools.cache
def _renew_and_load_statement() -> sa.Select[Conversation, ContactPoint]:
    """PostgreSQL: `_renew_statement` and `_conversation_statement` in one statement — the
    conversation as the renewal left it (no row: the lease is not ours)."""
    renewed = (
        sa.update(_CONVERSATIONS)
        .where(_held_by_token())
        .values(
            turn_lease_until=sa.bindparam("p_until", type_=_CONVERSATIONS.c.turn_lease_until.type)
        )
        .returning(*_CONVERSATIONS.c)
        .cte("renewed")
    )
    return sa.select(aliased(Conversation, renewed), ContactPoint).join(
        ContactPoint, ContactPoint.id == renewed.c.contact_point_id
    )


@functools.cache
def _claim_statement() -> sa.Update:
    c = _CONVERSATIONS.c
    return (
        sa.update(_CONVERSATIONS)
        .where(
            c.id == sa.bindparam("p_conversation_id", type_=sa.Integer),
            sa.or_(
                c.turn_lease_until.is_(None),
                c.turn_lease_until < sa.bindparam("p_now", type_=c.turn_lease_until.type),
            ),
        )
        .values(
            turn_lease_token=sa.bindparam("p_token", type_=sa.String),
            turn_lease_until=sa.bindparam("p_until", type_=c.turn_lease_until.type),
        )
        .returning(c.id)
    )


def _held_by_token() -> sa.ColumnElement[bool]:
    """Conversation `p_conversation_id` whose lease is ours (`p_token`)."""
    c = _CONVERSATIONS.c
    return sa.and_(
        c.id == sa.bindparam("p_conversation_id", type_=sa.Integer),
        c.turn_lease_token == sa.bindparam("p_token", type_=sa.String),
    )


@functools.cache
def _renew_statement() -> sa.Update:
    c = _CONVERSATIONS.c
    return (
        sa.update(_CONVERSATIONS)
        .where(_held_by_token())
        .values(turn_lease_until=sa.bindparam("p_until", type_=c.turn_lease_until.type))
        .returning(c.id)
    )


@functools.cache
def _release_statement() -> sa.Update:
    return (
        sa.update(_CONVERSATIONS)
        .where(_held_by_token())
        .values(turn_lease_token=None, turn_lease_until=None)
    )


def _unhandled_inbound(conversation_id: sa.BindParameter[int]) -> tuple[Any, ...]:
    """The unhandled inbound messages of a conversation: the turns still to run, oldest first
    by id. Shared by `_oldest_ready` and the conditional release, which must agree."""
    return (
        Message.conversation_id == conversation_id,
        Message.direction == Direction.INBOUND,
        Message.handled_at.is_(None),
    )


def _media_pending(message_id: Any) -> sa.Exists:
    """Message `message_id` has media still being fetched (its turn waits for them)."""
    return (
        sa.select(Attachment.id)
        .where(Attachment.message_id == message_id, Attachment.media_state == MediaState.PENDING)
        .exists()
    )


@functools.cache
def _release_unless_ready_statement() -> sa.Update:
    """Give the lease back unless the conversation's oldest unhandled inbound message is ready
    (exists, and has no media still being fetched): `_oldest_ready`'s condition, in SQL."""
    oldest = (
        sa.select(Message.id)
        .where(*_unhandled_inbound(sa.bindparam("p_conversation_id", type_=sa.Integer)))
        .order_by(Message.id)
        .limit(1)
        .scalar_subquery()
    )
    ready = sa.and_(oldest.is_not(None), ~_media_pending(oldest))
    return (
        sa.update(_CONVERSATIONS)
        .where(_held_by_token(), ~ready)
        .values(turn_lease_token=None, turn_lease_until=None)
        .returning(_CONVERSATIONS.c.id)
    )


@functools.cache
def _handled_statement(*, with_reading: bool) -> sa.Update:
    """Mark the turn's message handled (unless another worker did), with Rasa's reading."""
    c = _MESSAGES.c
    values: dict[str, Any] = {
        "handled_at": sa.bindparam("p_now", type_=c.handled_at.type),
        "case_id": sa.func.coalesce(c.case_id, sa.bindparam("p_case_id", type_=sa.Integer)),
    }
    if with_reading:
        values |= {
            "intent": sa.bindparam("p_intent", type_=c.intent.type),
            "intent_confidence": sa.bindparam("p_confidence", type_=c.intent_confidence.type),
            "entities": sa.bindparam("p_entities", type_=c.entities.type),
        }
    return (
        sa.update(_MESSAGES)
        .where(
            c.id == sa.bindparam("p_message_id", type_=sa.Integer),
            c.handled_at.is_(None),
        )
        .values(**values)
        .returning(c.id)
    )


@functools.cache
def _oldest_ready_statement() -> sa.Select[int, str, Channel, int | None, Holder, bool, bool]:
    conversation_id = sa.bindparam("conversation_id", type_=sa.Integer)
    return (
        sa.select(
            Message.id,
            Message.text,
            Message.channel,
            Conversation.case_id,
            Conversation.holder,
            _media_pending(Message.id),
            catch_up_owed_clause(conversation_id),
        )
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(*_unhandled_inbound(conversation_id))
        .order_by(Message.id)
        .limit(1)
    )


async def get_conversations_with_pending(
    session: AsyncSession, *, older_than: dt.timedelta, limit: int = 50
) -> Sequence[int]:
    """Conversations whose turns were left behind (a crashed process, Rasa was down), those
    waiting longest first, so a backlog larger than `limit` is worked off in arrival order."""
    cutoff = utcnow() - older_than
    query = (
        sa.select(Message.conversation_id)
        .where(
            Message.direction == Direction.INBOUND,
            Message.handled_at.is_(None),
            Message.created_at < cutoff,
        )
        .group_by(Message.conversation_id)
        .order_by(sa.func.min(Message.created_at), Message.conversation_id)
        .limit(limit)
    )
    return (await session.scalars(query)).all()
