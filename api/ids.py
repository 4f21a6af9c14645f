"""Bounds of the integers that reach the database as row ids.

Ids are 32-bit `integer` columns on PostgreSQL (and SQLite takes at most 64 bits): a larger
number from a request would fail inside the driver (a 500) instead of being refused (a 422).
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BeforeValidator

MAX_ID = 2**31 - 1


def _json_integer(value: object) -> object:
    """A JSON integer (7, or 7.0 as JSON Schema counts it), never `true` or "7"."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("deve ser um número inteiro")
    return value


# A row id in a JSON body.
StrictId = Annotated[int, Ge(1), Le(MAX_ID), BeforeValidator(_json_integer)]
