"""Custom actions run once per turn: the execution ledger and the session actions write through.

Rasa may run a turn again — our gateway replays a turn it already answered, but a Rasa that
died before saving its tracker, or a second Rasa behind a lease that expired, runs the whole
turn anew. So the action server keys every action call by its turn (the inbound message id the
gateway was given), the action's name and how many times that action already ran in the turn,
and writes that key, with the response, in the same transaction as the action's own writes. A
call whose key is already there changes nothing and gets the recorded response.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.conversations.models import Conversation
from api.db import unit_of_work, utcnow
from api.engine.models import ActionExecution

_current: ContextVar[AsyncSession | None] = ContextVar("action_session", default=None)


@dataclass(frozen=True)
class ActionKey:
    sender_id: str
    turn_key: str
    action_name: str
    occurrence: int


def action_key(action_call: Mapping[str, Any]) -> ActionKey | None:
    """The key of an action call as Rasa 3.6 sends it, or None when the turn has no message id
    (a call made by hand; nothing to deduplicate against)."""
    action_name = action_call.get("next_action")
    tracker = action_call.get("tracker")
    if not isinstance(action_name, str) or not isinstance(tracker, Mapping):
        return None
    sender_id = str(tracker.get("sender_id") or action_call.get("sender_id") or "")
    events = tracker.get("events") or []
    occurrence = 0
    for event in reversed(events):
        if not isinstance(event, Mapping):
            continue
        if event.get("event") == "user":
            message_id = event.get("message_id")
            if not message_id or not sender_id:
                return None
            return ActionKey(sender_id, str(message_id), action_name, occurrence)
        if event.get("event") == "action" and event.get("name") == action_name:
            occurrence += 1
    return None


def _is_key() -> sa.ColumnElement[bool]:
    """The action_executions row of the bound key (`sender_id`, `turn_key`, `action_name`,
    `occurrence`): unique, so at most one."""
    return sa.and_(
        ActionExecution.sender_id
        == sa.bindparam("sender_id", type_=ActionExecution.sender_id.type),
        ActionExecution.turn_key == sa.bindparam("turn_key", type_=ActionExecution.turn_key.type),
        ActionExecution.action_name
        == sa.bindparam("action_name", type_=ActionExecution.action_name.type),
        ActionExecution.occurrence
        == sa.bindparam("occurrence", type_=ActionExecution.occurrence.type),
    )


@functools.cache
def _execution_statement() -> sa.Select[ActionExecution]:
    """The run of an action key, built once (every action call looks it up: building the
    statement per call cost more CPU than running it); each call binds the key."""
    return sa.select(ActionExecution).where(_is_key())


@functools.cache
def _conversation_and_execution_statement() -> sa.Select[Conversation, dict[str, Any] | None]:
    """The conversation `conversation_id`, and the recorded response of the bound key when
    that action already ran (NULL otherwise: the response column is never NULL itself)."""
    return (
        sa.select(Conversation, ActionExecution.response)
        .outerjoin(ActionExecution, _is_key())
        .where(Conversation.id == sa.bindparam("conversation_id", type_=Conversation.id.type))
    )


async def get_execution(session: AsyncSession, key: ActionKey) -> ActionExecution | None:
    return await session.scalar(_execution_statement(), _key_params(key))


@dataclass
class Lookup:
    """What an action call reads before it runs: the response of its earlier run, if any, and
    the turn's conversation, held here so that it stays in the session's (weak) identity map
    while the action runs (the action's own `session.get(Conversation, id)` asks nothing)."""

    response: dict[str, Any] | None
    conversation: Conversation | None = None


async def find_execution(
    session: AsyncSession, key: ActionKey, *, conversation_id: int | None
) -> Lookup:
    """The earlier run of `key` and, in the same statement, the conversation the action is
    about (every bot action loads it): one round trip where there were two. Without a
    conversation (a call made by hand, a conversation gone), the key alone is looked up."""
    if conversation_id is not None:
        row = (
            await session.execute(
                _conversation_and_execution_statement(),
                {**_key_params(key), "conversation_id": conversation_id},
            )
        ).first()
        if row is not None:
            return Lookup(response=row[1], conversation=row[0])
    done = await get_execution(session, key)
    return Lookup(response=done.response if done is not None else None)


def _key_params(key: ActionKey) -> dict[str, Any]:
    return {
        "sender_id": key.sender_id,
        "turn_key": key.turn_key,
        "action_name": key.action_name,
        "occurrence": key.occurrence,
    }


async def create_execution(session: AsyncSession, key: ActionKey, response: dict[str, Any]) -> None:
    """Record the run, now: a concurrent run of the same key fails here (unique). A Core INSERT
    (the ORM's add and flush of the row cost about three times the statement, once per action
    call); the session autoflushes what the action added before it."""
    await session.execute(
        _insert_execution_statement(),
        {
            "sender_id": key.sender_id,
            "turn_key": key.turn_key,
            "action_name": key.action_name,
            "occurrence": key.occurrence,
            "response": response,
        },
    )


@functools.cache
def _insert_execution_statement() -> sa.Insert:
    return sa.insert(cast(sa.Table, ActionExecution.__table__))


async def do_prune_executions(session: AsyncSession, *, older_than: dt.timedelta) -> int:
    """Forget runs older than any retry of their turn can be (Rasa's session expires long
    before): the table stays small. Returns how many rows were deleted."""
    result = await session.execute(
        sa.delete(ActionExecution).where(ActionExecution.created_at < utcnow() - older_than)
    )
    return int(getattr(result, "rowcount", 0) or 0)


@contextmanager
def bind_action_session(session: AsyncSession) -> Iterator[None]:
    """Actions run inside this block write through `session` (the ledger's transaction)."""
    token = _current.set(session)
    try:
        yield
    finally:
        _current.reset(token)


@asynccontextmanager
async def action_session() -> AsyncIterator[AsyncSession]:
    """The session an action writes through: the action server's transaction when it keys the
    turn (committed with the ledger row), else a unit of work of its own."""
    bound = _current.get()
    if bound is not None:
        yield bound
        return
    async with unit_of_work() as session:
        yield session
