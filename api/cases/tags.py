"""Case tags: short labels analysts put on cases and filter the cases list by."""

from __future__ import annotations

import re
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin
from api.errors import ValidationFailed

MAX_TAG = 40
_SPACES = re.compile(r"\s+")


class CaseTag(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "case_tags"
    __table_args__ = (sa.UniqueConstraint("case_id", "tag"),)

    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    tag: Mapped[str] = mapped_column(sa.String(MAX_TAG), index=True)


def normalize_tag(raw: str) -> str:
    """Lowercase, single spaces; refused when empty or longer than 40 characters."""
    tag = _SPACES.sub(" ", raw.strip().lower())
    if not tag:
        raise ValidationFailed("Informe a etiqueta.")
    if len(tag) > MAX_TAG:
        raise ValidationFailed(f"A etiqueta pode ter no máximo {MAX_TAG} caracteres.")
    return tag


def parse_tags(raw: str) -> list[str]:
    """Tags typed as a comma-separated list, normalized, without repeats, in order."""
    seen: list[str] = []
    for part in raw.split(","):
        if part.strip():
            tag = normalize_tag(part)
            if tag not in seen:
                seen.append(tag)
    return seen


async def get_case_tags(session: AsyncSession, *, case_id: int) -> list[str]:
    rows = await session.scalars(
        sa.select(CaseTag.tag).where(CaseTag.case_id == case_id).order_by(CaseTag.tag)
    )
    return list(rows)


async def get_tags_of_cases(
    session: AsyncSession, *, case_ids: Sequence[int]
) -> dict[int, list[str]]:
    if not case_ids:
        return {}
    result: dict[int, list[str]] = {}
    rows = await session.execute(
        sa.select(CaseTag.case_id, CaseTag.tag)
        .where(CaseTag.case_id.in_(list(case_ids)))
        .order_by(CaseTag.tag)
    )
    for case_id, tag in rows.all():
        result.setdefault(case_id, []).append(tag)
    return result


async def get_all_tags(session: AsyncSession) -> list[str]:
    return list(await session.scalars(sa.select(CaseTag.tag).distinct().order_by(CaseTag.tag)))
