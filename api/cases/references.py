"""Issuing case references INF-YYYY-NNNNNN from a per-year counter, safely under concurrency."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.models import Case, CaseRefCounter
from api.identifiers.case_ref import format_case_ref


async def _ensure_counter(session: AsyncSession, year: int) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(CaseRefCounter).values(year=year, last_seq=0).on_conflict_do_nothing()
    )


async def create_case_reference(session: AsyncSession, *, year: int) -> str:
    """The next free reference for `year`; the row update serialises concurrent callers.

    A reference that already exists (written with an explicit reference the counter never saw)
    is skipped, never issued twice."""
    await _ensure_counter(session, year)
    while True:
        seq = await session.scalar(
            sa.update(CaseRefCounter)
            .where(CaseRefCounter.year == year)
            .values(last_seq=CaseRefCounter.last_seq + 1)
            .returning(CaseRefCounter.last_seq)
        )
        assert seq is not None
        reference = format_case_ref(year, seq)
        taken = await session.scalar(sa.select(Case.id).where(Case.reference == reference))
        if taken is None:
            return reference


async def do_reserve_case_reference(session: AsyncSession, *, year: int, seq: int) -> None:
    """Keep the counter ahead of a reference that came from outside (an import)."""
    await _ensure_counter(session, year)
    await session.execute(
        sa.update(CaseRefCounter)
        .where(CaseRefCounter.year == year, CaseRefCounter.last_seq < seq)
        .values(last_seq=seq)
    )


async def do_reserve_case_references(session: AsyncSession, references: Iterable[str]) -> None:
    """Reserve every explicit reference named in a batch before any reference is generated."""
    highest: dict[int, int] = {}
    for reference in references:
        _, year_text, seq_text = reference.split("-")
        year = int(year_text)
        highest[year] = max(highest.get(year, 0), int(seq_text))
    for year, seq in sorted(highest.items()):
        await do_reserve_case_reference(session, year=year, seq=seq)
