"""Automation rules, their execution ledger and the actions they scheduled for later."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin, JSONType, utcnow


class AutomationRule(IdMixin, CreatedAtMixin, Base):
    """A rule: a trigger (an event kind, or a time condition), conditions and actions.

    `trigger`, `conditions` and `actions` hold the JSON of api/automations/schemas.py; they are
    validated before they are stored (an unknown template or an illegal status move is
    refused). `version` grows with each edit: what an older version scheduled is cancelled."""

    __tablename__ = "automation_rules"

    name: Mapped[str] = mapped_column(sa.String(120), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    enabled: Mapped[bool] = mapped_column(default=True)
    # Set on the shipped defaults ("email_sem_resposta", …); None for rules an admin created.
    builtin_key: Mapped[str | None] = mapped_column(sa.String(40), unique=True)
    trigger: Mapped[dict[str, Any]] = mapped_column(JSONType)
    conditions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    actions: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # Events caused by rules trigger this rule only when it says so (loops stop at the depth
    # limit either way).
    allow_rule_events: Mapped[bool] = mapped_column(default=False)
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="SET NULL")
    )


class AutomationExecution(IdMixin, CreatedAtMixin, Base):
    """The ledger: one row per (rule, subject, trigger), claimed by its INSERT before any
    action runs and committed with the actions' own writes, so a rule acts exactly once per
    subject and triggering event (or time cycle). Events the actions emit carry this row's id
    as their actor id (actor kind `rule`), which gives the depth of a chain of rules."""

    __tablename__ = "automation_executions"
    __table_args__ = (
        sa.UniqueConstraint("rule_id", "subject", "trigger_key"),
        sa.Index("ix_automation_executions_case_id_id", "case_id", "id"),
        sa.Index("ix_automation_executions_created_at", "created_at"),
    )

    rule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("automation_rules.id", ondelete="CASCADE"), index=True
    )
    rule_version: Mapped[int]
    # What the rule acted on: "case:12", "conversation:5", "installment:7".
    subject: Mapped[str] = mapped_column(sa.String(80))
    # Why: "event:123" (the triggering event) or a time cycle ("silence:45", "deadline:…").
    trigger_key: Mapped[str] = mapped_column(sa.String(120))
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="SET NULL")
    )
    event_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    depth: Mapped[int] = mapped_column(default=0)
    # done (every action ran), partial (some were skipped or failed), skipped, failed.
    state: Mapped[str] = mapped_column(sa.String(16), default="done")
    # Messages this execution queued (the send limits count them).
    sends: Mapped[int] = mapped_column(default=0)
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ScheduledAction(IdMixin, CreatedAtMixin, Base):
    """An action a firing deferred ("2 business days later, send …"). Editing or disabling the
    rule cancels the pending ones."""

    __tablename__ = "automation_scheduled_actions"
    __table_args__ = (sa.Index("ix_automation_scheduled_actions_state_due", "state", "due_at"),)

    rule_id: Mapped[int] = mapped_column(
        sa.ForeignKey("automation_rules.id", ondelete="CASCADE"), index=True
    )
    rule_version: Mapped[int]
    execution_id: Mapped[int] = mapped_column(
        sa.ForeignKey("automation_executions.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=0)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("cases.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("conversations.id", ondelete="SET NULL")
    )
    action: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # Values the action needs from its firing (an installment's amount and due date).
    context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    due_at: Mapped[dt.datetime]
    # pending → done | skipped | failed | cancelled
    state: Mapped[str] = mapped_column(sa.String(16), default="pending")
    finished_at: Mapped[dt.datetime | None]
    result: Mapped[str | None] = mapped_column(sa.Text)
