"""The lookups every WhatsApp message makes are built once and reused (SQLAlchemy memoizes the
cache key on the statement object; building them per call cost ~16 % of the service's CPU), and
each means exactly what the statement built per call meant: the same SQL on both databases once
its values are bound."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.orm import joinedload

import api.models  # noqa: F401  (every model mapped before any statement is built)
from api.assistant.context import _case_statement
from api.cases.models import Case
from api.channels.numbers.models import WhatsAppNumber
from api.channels.numbers.service import _latest_inbound_meta_statement, _number_statement
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import _contact_points_statement
from api.conversations.models import Channel, Conversation, Direction, Message
from api.conversations.service import _open_conversation_statement
from api.engine.ledger import _conversation_and_execution_statement, _execution_statement
from api.engine.models import ActionExecution

pytestmark = pytest.mark.unit

BUILDERS: list[Callable[[], Any]] = [
    _contact_points_statement,
    _open_conversation_statement,
    _latest_inbound_meta_statement,
    _execution_statement,
    _conversation_and_execution_statement,
    _case_statement,
    lambda: _number_statement(by_number=True, by_account=False),
    lambda: _number_statement(by_number=False, by_account=True),
    lambda: _number_statement(by_number=True, by_account=True),
]


@pytest.mark.parametrize("builder", BUILDERS)
def test_a_builder_returns_the_same_statement_every_call(builder: Callable[[], Any]) -> None:
    assert builder() is builder()


def test_each_combination_of_the_number_lookup_has_its_own_statement() -> None:
    statements = {
        id(_number_statement(by_number=n, by_account=a))
        for n, a in [(True, False), (False, True), (True, True)]
    }
    assert len(statements) == 3


def _found_number(number: str | None, account_id: str | None) -> sa.Select[WhatsAppNumber]:
    conditions: list[Any] = []
    if number:
        conditions.append(WhatsAppNumber.number == number)
    if account_id:
        conditions.append(WhatsAppNumber.account_id == account_id)
    return (
        sa.select(WhatsAppNumber)
        .where(WhatsAppNumber.provider == "meta", sa.or_(*conditions))
        .order_by(WhatsAppNumber.active.desc(), WhatsAppNumber.id)
        .limit(1)
    )


# (statement as built per call, prebuilt statement, the values it binds)
EQUIVALENTS: list[tuple[str, Callable[[], Any], Callable[[], Any], dict[str, Any]]] = [
    (
        "contact points",
        lambda: (
            sa.select(ContactPoint)
            .where(
                ContactPoint.kind == ContactKind.PHONE,
                ContactPoint.value.in_(["+5511999990000", "+551199990000"]),
            )
            .order_by(ContactPoint.id)
        ),
        _contact_points_statement,
        {"kind": ContactKind.PHONE, "values": ["+5511999990000", "+551199990000"]},
    ),
    (
        "open conversation",
        lambda: (
            sa.select(Conversation)
            .where(
                Conversation.channel == Channel.WHATSAPP,
                Conversation.contact_point_id == 7,
                Conversation.closed_at.is_(None),
            )
            .order_by(Conversation.id.desc())
            .limit(1)
        ),
        _open_conversation_statement,
        {"channel": Channel.WHATSAPP, "contact_point_id": 7},
    ),
    (
        "latest inbound meta",
        lambda: (
            sa.select(Message.meta)
            .where(Message.conversation_id == 5, Message.direction == Direction.INBOUND)
            .order_by(Message.id.desc())
            .limit(1)
        ),
        _latest_inbound_meta_statement,
        {"conversation_id": 5},
    ),
    (
        "number by number",
        lambda: _found_number("+5511988887777", None),
        lambda: _number_statement(by_number=True, by_account=False),
        {"provider": "meta", "number": "+5511988887777"},
    ),
    (
        "number by account",
        lambda: _found_number(None, "1234567890"),
        lambda: _number_statement(by_number=False, by_account=True),
        {"provider": "meta", "account_id": "1234567890"},
    ),
    (
        "number by both",
        lambda: _found_number("+5511988887777", "1234567890"),
        lambda: _number_statement(by_number=True, by_account=True),
        {"provider": "meta", "number": "+5511988887777", "account_id": "1234567890"},
    ),
    (
        "action execution",
        lambda: sa.select(ActionExecution).where(
            ActionExecution.sender_id == "conv-1",
            ActionExecution.turn_key == "msg-1",
            ActionExecution.action_name == "action_acknowledge",
            ActionExecution.occurrence == 2,
        ),
        _execution_statement,
        {
            "sender_id": "conv-1",
            "turn_key": "msg-1",
            "action_name": "action_acknowledge",
            "occurrence": 2,
        },
    ),
    (
        "case",
        lambda: (
            sa.select(Case)
            .where(Case.id == 3)
            .options(joinedload(Case.brand), joinedload(Case.infringer), joinedload(Case.listings))
        ),
        _case_statement,
        {"case_id": 3},
    ),
]


# The dialects the service runs on (no connection is made).
DIALECTS = [
    create_async_engine("postgresql+asyncpg://").dialect,
    create_async_engine("sqlite+aiosqlite://").dialect,
]


def _sql(statement: Any, dialect: sa.Dialect) -> str:
    kw = {"literal_binds": True, "render_postcompile": True}
    return str(statement.compile(dialect=dialect, compile_kwargs=kw))


@pytest.mark.parametrize("dialect", DIALECTS, ids=["pg", "sqlite"])
@pytest.mark.parametrize(
    ("per_call", "prebuilt", "params"),
    [case[1:] for case in EQUIVALENTS],
    ids=[case[0] for case in EQUIVALENTS],
)
def test_the_prebuilt_statement_means_what_the_per_call_one_meant(
    per_call: Callable[[], Any],
    prebuilt: Callable[[], Any],
    params: dict[str, Any],
    dialect: sa.Dialect,
) -> None:
    assert _sql(prebuilt().params(params), dialect) == _sql(per_call(), dialect)
