"""The ledger of custom actions run: one row per (turn, action, occurrence), written in the
transaction of the action's own writes, so a turn Rasa runs again replays instead of acting."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin, utcnow
from api.enums import str_enum


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


class EngineCommandKind(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"


class EngineCommandState(enum.StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DONE = "done"


class EngineCommand(IdMixin, CreatedAtMixin, Base):
    """A command for Rasa's tracker (pause, resume) written in the transaction that changed who
    holds the conversation, delivered after commit and retried until Rasa has it, in order per
    conversation: Rasa's tracker never stays in disagreement with the holder."""

    __tablename__ = "engine_commands"
    __table_args__ = (
        sa.Index("ix_engine_commands_due", "state", "next_attempt_at"),
        sa.Index("ix_engine_commands_conversation", "conversation_id", "id"),
    )

    conversation_id: Mapped[int] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="CASCADE")
    )
    sender_id: Mapped[str] = mapped_column(sa.String(255))
    kind: Mapped[EngineCommandKind] = mapped_column(str_enum(EngineCommandKind, 16))
    state: Mapped[EngineCommandState] = mapped_column(
        str_enum(EngineCommandState, 16), default=EngineCommandState.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    done_at: Mapped[dt.datetime | None]
