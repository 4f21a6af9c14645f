"""The ledger of custom actions run: one row per (turn, action, occurrence), written in the
transaction of the action's own writes, so a turn Rasa runs again replays instead of acting."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin


class ActionExecution(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "action_executions"
    __table_args__ = (
        sa.UniqueConstraint("sender_id", "turn_key", "action_name", "occurrence"),
        sa.Index("ix_action_executions_created_at", "created_at"),  # pruning by age
    )

    sender_id: Mapped[str] = mapped_column(sa.String(255))
    # The inbound message id Rasa knows the turn by ("msg-<messages.id>").
    turn_key: Mapped[str] = mapped_column(sa.String(255))
    action_name: Mapped[str] = mapped_column(sa.String(100))
    # An action predicted twice after one user message runs twice: 0 for the first, 1 …
    occurrence: Mapped[int] = mapped_column(default=0)
    # What the action server answered (events and responses), replayed as is.
    response: Mapped[dict[str, Any]]
