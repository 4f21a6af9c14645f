"""Case suggestions for inbound mail that matched no case: an analyst confirms or rejects them.

The table keeps its name (email_match_suggestions): only e-mail fills it today.
"""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class SuggestionState(enum.StrEnum):
    SUGGESTED = "suggested"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"


class MatchSuggestion(IdMixin, CreatedAtMixin, Base):
    """A case an unmatched inbound e-mail may belong to, with why; an analyst decides."""

    __tablename__ = "email_match_suggestions"
    __table_args__ = (sa.UniqueConstraint("message_id", "case_id"),)

    message_id: Mapped[int] = mapped_column(
        sa.ForeignKey("messages.id", ondelete="CASCADE"), index=True
    )
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    score: Mapped[float]
    rule: Mapped[str] = mapped_column(sa.String(32))
    reason: Mapped[str] = mapped_column(sa.String(300))
    state: Mapped[SuggestionState] = mapped_column(
        str_enum(SuggestionState, 16), default=SuggestionState.SUGGESTED, index=True
    )
    decided_by: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))
    decided_at: Mapped[dt.datetime | None]
