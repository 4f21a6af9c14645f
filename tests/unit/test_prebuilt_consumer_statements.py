"""The event consumers' per-pass statements are built once and reused (building a statement and
its cache key cost more CPU than running it): each builder returns the same object every call,
one per set of kinds for a consumer's read."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import api.models  # noqa: F401  (every mapper, before the builders use them)
from api.events import consumers
from api.operations import consumer as alerts
from api.operations import kinds

pytestmark = pytest.mark.unit

BUILDERS: list[Callable[[], object]] = [
    consumers._head_statement,
    consumers._lock_cursor_statement,
    consumers._count_cursor_statement,
    consumers._move_cursor_statement,
    alerts._ahead_statement,
    alerts._unresolved_alerts_statement,
    alerts._conversations_statement,
    alerts._cases_statement,
    kinds._alert_settings_statement,
]


@pytest.mark.parametrize("build", BUILDERS, ids=lambda build: build.__name__)
def test_a_builder_returns_the_same_statement_every_time(build: Callable[[], object]) -> None:
    assert build() is build()


@pytest.mark.parametrize("postgresql", [True, False])
def test_a_read_statement_is_built_once_per_dialect_and_set_of_kinds(postgresql: bool) -> None:
    some = consumers._read_batch_statement(postgresql, frozenset({"a", "b"}))
    assert consumers._read_batch_statement(postgresql, frozenset({"b", "a"})) is some
    assert consumers._read_batch_statement(postgresql, None) is (
        consumers._read_batch_statement(postgresql, None)
    )
    assert consumers._read_batch_statement(postgresql, frozenset({"a"})) is not some
    assert consumers._read_batch_statement(not postgresql, frozenset({"a", "b"})) is not some
