"""A query counter: how many SQL statements a block of code sent, on every engine.

    with assert_max_queries(12):
        await client.get("/api/v1/handoffs")

Transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT, PRAGMA) is not counted, so the same
budget holds on PostgreSQL and SQLite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

_NOT_COUNTED = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "PRAGMA")


@dataclass
class QueryLog:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)

    def __str__(self) -> str:
        return "\n".join(f"{n}. {s[:300]}" for n, s in enumerate(self.statements, start=1))


@contextmanager
def count_queries() -> Iterator[QueryLog]:
    log = QueryLog()

    def before(
        _conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool
    ) -> None:
        if not statement.lstrip().upper().startswith(_NOT_COUNTED):
            log.statements.append(" ".join(statement.split()))

    event.listen(Engine, "before_cursor_execute", before)
    try:
        yield log
    finally:
        event.remove(Engine, "before_cursor_execute", before)


@contextmanager
def assert_max_queries(limit: int) -> Iterator[QueryLog]:
    with count_queries() as log:
        yield log
    assert log.count <= limit, f"{log.count} queries, at most {limit} expected:\n{log}"
