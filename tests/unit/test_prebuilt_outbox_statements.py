"""The outbox and delivery statements built once: each builder returns the same object every
time, and that statement, with its params, sends the database the same SQL with the same
values as the statement built per call before (kept below as the reference), on PostgreSQL
(asyncpg) and SQLite (aiosqlite)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BindParameter, ClauseElement

import api.models  # noqa: F401  (every mapper, as the app has them)
from api.conversations import delivery
from api.conversations.delivery import RANK, stored_rank
from api.conversations.models import Channel, DeliveryStatus, Message
from api.outbox import service
from api.outbox.models import OutboxItem, OutboxState

DIALECTS: list[Dialect] = [PGDialect_asyncpg(), SQLiteDialect_aiosqlite()]  # type: ignore[no-untyped-call]
NOW = dt.datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=dt.UTC)
LOCKED_UNTIL = NOW + dt.timedelta(seconds=90)

BUILDERS: list[Callable[[], object]] = [
    lambda: service._claim_statement(False),
    lambda: service._claim_statement(True),
    service._done_statement,
    service._sent_quietly_statement,
    service._sent_forward_statement,
    service._provider_id_statement,
    delivery._advance_statement,
    delivery._reported_statement,
    delivery._unnamed_statement,
]


@pytest.mark.parametrize("build", BUILDERS)
def test_each_statement_is_built_once(build: Callable[[], object]) -> None:
    assert build() is build()


def test_the_claim_variants_differ() -> None:
    assert service._claim_statement(True) is not service._claim_statement(False)


def unchanged(value: Any) -> Any:
    return value


def sent(
    statement: ClauseElement, dialect: Dialect, params: Mapping[str, Any] | None = None
) -> tuple[str, list[Any]]:
    """The SQL and the driver's values, in the order the SQL uses them (bind names aside), as
    the database receives them: an expanding IN (…) is rendered one value per element, as
    SQLAlchemy does at execution, so it compares with the same IN written as bound values."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    state = compiled.construct_expanded_state(dict(params) if params is not None else None)
    values = state.parameters
    binds: dict[str, BindParameter[Any]] = {
        name: bind for bind, name in compiled.bind_names.items()
    }
    assert state.positiontup is not None
    if dialect.paramstyle == "numeric_dollar":  # asyncpg: $1 … $n, a repeated bind reuses its $
        numbers = [int(n) for n in re.findall(r"\$(\d+)", state.statement)]
        names = [state.positiontup[n - 1] for n in numbers]
        sql = re.sub(r"\$\d+", "$?", state.statement)
    else:  # qmark: one ? per use
        names = list(state.positiontup)
        sql = state.statement
    driver_values: list[Any] = []
    for name in names:
        # An expanding bind's elements are named after it: state_3 → state_3_1, state_3_2.
        bind = binds[name] if name in binds else binds[name.rsplit("_", 1)[0]]
        process = bind.type.dialect_impl(dialect).bind_processor(dialect) or unchanged
        driver_values.append(process(values[name]))
    return sql, driver_values


def same_sql(old: ClauseElement, new: ClauseElement, params: Mapping[str, Any]) -> None:
    for dialect in DIALECTS:
        assert sent(new, dialect, params) == sent(old, dialect), dialect.name


# The statements as they were built on every call before (api/outbox/service.py and
# api/conversations/delivery.py at 306d269).


def old_claim(limit: int, conversation_id: int | None) -> ClauseElement:
    earlier = aliased(OutboxItem)
    blocked_by_earlier = (
        sa.select(earlier.id)
        .where(
            earlier.conversation_id == OutboxItem.conversation_id,
            earlier.id < OutboxItem.id,
            earlier.state.in_([OutboxState.PENDING, OutboxState.IN_FLIGHT]),
        )
        .exists()
    )
    due = sa.or_(
        sa.and_(OutboxItem.state == OutboxState.PENDING, OutboxItem.next_attempt_at <= NOW),
        sa.and_(OutboxItem.state == OutboxState.IN_FLIGHT, OutboxItem.locked_until < NOW),
    )
    only = [] if conversation_id is None else [OutboxItem.conversation_id == conversation_id]
    chosen = (
        sa.select(OutboxItem.id)
        .where(due, ~blocked_by_earlier, *only)
        .order_by(OutboxItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=OutboxItem)
    )
    return (
        sa.update(OutboxItem)
        .where(OutboxItem.id.in_(chosen.scalar_subquery()))
        .values(
            state=OutboxState.IN_FLIGHT,
            locked_until=LOCKED_UNTIL,
            attempts=OutboxItem.attempts + 1,
        )
        .returning(OutboxItem)
        .execution_options(synchronize_session=False, populate_existing=True)
    )


@pytest.mark.parametrize("conversation_id", [None, 42])
def test_claim_sends_the_same_sql(conversation_id: int | None) -> None:
    params: dict[str, Any] = {"p_now": NOW, "p_locked_until": LOCKED_UNTIL, "p_limit": 7}
    if conversation_id is not None:
        params["p_conversation_id"] = conversation_id
    new = service._claim_statement(conversation_id is not None)
    same_sql(old_claim(7, conversation_id), new, params)
    assert new.get_execution_options() == {
        "synchronize_session": False,
        "populate_existing": True,
    }


def test_done_sends_the_same_sql() -> None:
    old = (
        sa.update(OutboxItem)
        .where(OutboxItem.id == 11)
        .values(state=OutboxState.DONE, done_at=NOW, locked_until=None)
        .returning(OutboxItem.message_id)
    )
    same_sql(old, service._done_statement(), {"p_item_id": 11, "p_done_at": NOW})


@pytest.mark.parametrize("status", [DeliveryStatus.QUEUED, DeliveryStatus.SENDING])
def test_sent_quietly_sends_the_same_sql(status: DeliveryStatus) -> None:
    forward = stored_rank() < RANK[status]
    old = (
        sa.update(Message)
        .where(Message.id == 12)
        .values(
            provider_id="SM1",
            delivery_status=sa.case((forward, str(status)), else_=Message.delivery_status),
            status_updated_at=sa.case((forward, NOW), else_=Message.status_updated_at),
        )
    )
    params = {
        "p_message_id": 12,
        "p_provider_id": "SM1",
        "p_rank": RANK[status],
        "p_status": str(status),
        "p_now": NOW,
    }
    same_sql(old, service._sent_quietly_statement(), params)


@pytest.mark.parametrize(
    "status", [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ]
)
def test_sent_forward_sends_the_same_sql(status: DeliveryStatus) -> None:
    forward = stored_rank() < RANK[status]
    old = (
        sa.update(Message)
        .where(Message.id == 12, forward)
        .values(provider_id="SM1", delivery_status=status, status_updated_at=NOW)
        .returning(Message.case_id, Message.conversation_id, Message.channel)
    )
    params = {
        "p_message_id": 12,
        "p_rank": RANK[status],
        "p_provider_id": "SM1",
        "p_status": status,
        "p_now": NOW,
    }
    same_sql(old, service._sent_forward_statement(), params)


def test_provider_id_sends_the_same_sql() -> None:
    old = sa.update(Message).where(Message.id == 12).values(provider_id="SM1")
    params = {"p_message_id": 12, "p_provider_id": "SM1"}
    same_sql(old, service._provider_id_statement(), params)


@pytest.mark.parametrize(
    "status", [DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.READ]
)
def test_advance_sends_the_same_sql(status: DeliveryStatus) -> None:
    old = (
        sa.update(Message)
        .where(
            Message.channel == Channel.WHATSAPP,
            Message.provider_id == "SM2",
            RANK[status] > stored_rank(),
        )
        .values(delivery_status=status, status_updated_at=NOW)
        .returning(Message.id, Message.case_id, Message.conversation_id)
    )
    params = {
        "p_channel": Channel.WHATSAPP,
        "p_provider_id": "SM2",
        "p_rank": RANK[status],
        "p_status": status,
        "p_now": NOW,
    }
    same_sql(old, delivery._advance_statement(), params)


def test_status_lookups_send_the_same_sql() -> None:
    old = (
        sa.select(Message)
        .where(Message.channel == Channel.WHATSAPP, Message.provider_id == "SM3")
        .with_for_update()
    )
    params: dict[str, Any] = {"p_channel": Channel.WHATSAPP, "p_provider_id": "SM3"}
    same_sql(old, delivery._reported_statement(), params)
    old = (
        sa.select(Message)
        .where(
            Message.id == 13,
            Message.channel == Channel.WHATSAPP,
            Message.provider_id.is_(None),
        )
        .with_for_update()
    )
    params = {"p_message_id": 13, "p_channel": Channel.WHATSAPP}
    same_sql(old, delivery._unnamed_statement(), params)
