"""Small helpers shared by models: string enums stored portably."""

from __future__ import annotations

import enum

import sqlalchemy as sa


def str_enum(enum_cls: type[enum.StrEnum], length: int = 32) -> sa.Enum:
    """A VARCHAR + CHECK column for a StrEnum, the same on PostgreSQL and SQLite."""
    return sa.Enum(
        enum_cls,
        native_enum=False,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
        create_constraint=True,
        name=enum_cls.__name__.lower(),
    )
