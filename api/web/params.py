"""Path and query parameters shared by the routes, bounded so no number reaches the database
unchecked (see api/ids.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

from api.ids import MAX_ID

PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
# An optional filter by id (brand_id, …); absent means "any".
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
# A cursor after a row id (0: from the start).
AfterId = Annotated[int, Query(ge=0, le=MAX_ID)]
# Row offsets and page numbers, bounded far beyond any real table.
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]
