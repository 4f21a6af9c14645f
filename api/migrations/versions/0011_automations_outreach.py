"""automations: rules, execution ledger, scheduled actions, and the shipped default rules

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 08:00:00.000000
"""

import datetime as dt
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")

# The defaults a new install starts with (enabled; an admin edits or disables them). Kept here
# as plain data: a migration must not change meaning when the application code does.
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "builtin_key": "email_sem_resposta",
        "name": "E-mail sem resposta há 3 dias úteis",
        "description": (
            "Nosso último e-mail ficou 3 dias úteis sem resposta: lembrete na mesma conversa "
            "(mesmo fio) e alerta ao responsável, uma vez por silêncio."
        ),
        "trigger": {"type": "time", "anchor": "unanswered", "days": 3},
        "conditions": {"channels": ["email"]},
        "actions": [
            {"type": "send_template", "template": "lembrete_email", "channel": "conversation"},
            {
                "type": "raise_alert",
                "kind": "email_ignored",
                "title": "E-mail sem resposta há 3 dias úteis (lembrete enviado)",
                "severity": "warning",
            },
        ],
    },
    {
        "builtin_key": "prazo_sem_resposta",
        "name": "Prazo da notificação vencido sem resposta",
        "description": (
            "O prazo de resposta da notificação acabou e o infrator não respondeu: o caso vai "
            "para Sem resposta."
        ),
        "trigger": {"type": "time", "anchor": "notice_deadline", "days": 0},
        "conditions": {"statuses": ["NOTIFICADO"]},
        "actions": [
            {
                "type": "move_status",
                "to": "SEM_RESPOSTA",
                "reason": "prazo da notificação vencido sem resposta",
            }
        ],
    },
    {
        "builtin_key": "parcela_vencida",
        "name": "Parcela vencida",
        "description": (
            "Uma parcela do acordo venceu sem pagamento: lembrete no canal da conversa e "
            "alerta ao responsável."
        ),
        "trigger": {"type": "time", "anchor": "installment_due", "days": 0},
        "conditions": {},
        "actions": [
            {"type": "send_template", "template": "lembrete_parcela", "channel": "conversation"},
            {
                "type": "raise_alert",
                "kind": "installment_overdue",
                "title": "Parcela vencida (lembrete enviado)",
                "severity": "warning",
            },
        ],
    },
    {
        "builtin_key": "acordo_aceito",
        "name": "Acordo aceito pelo analista: enviar dados de pagamento",
        "description": (
            "Quando um analista registra o acordo assinado, os dados de pagamento do acordo "
            "são enviados ao infrator."
        ),
        "trigger": {"type": "event", "event": "agreement.accepted"},
        "conditions": {"actor_kinds": ["analyst"]},
        "actions": [{"type": "send_payment_details", "template": "link_pagamento"}],
    },
    {
        "builtin_key": "pagamento_confirmado",
        "name": "Pagamento confirmado: agradecer e mover o caso",
        "description": (
            "Pagamento confirmado (por um analista ou pela conciliação): agradecimento ao "
            "infrator e o caso em Pago."
        ),
        "trigger": {"type": "event", "event": "payment.confirmed"},
        "conditions": {},
        "actions": [
            {
                "type": "send_template",
                "template": "agradecimento_pagamento",
                "channel": "conversation",
            },
            {"type": "move_status", "to": "PAGO", "reason": "pagamento confirmado"},
        ],
    },
]


def upgrade() -> None:
    now = dt.datetime.now(dt.UTC)
    rules = op.create_table(
        "automation_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("builtin_key", sa.String(length=40), nullable=True),
        sa.Column("trigger", _JSON, nullable=False),
        sa.Column("conditions", _JSON, nullable=False),
        sa.Column("actions", _JSON, nullable=False),
        sa.Column("allow_rule_events", sa.Boolean(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["analysts.id"],
            name=op.f("fk_automation_rules_updated_by_id_analysts"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_automation_rules_name")),
        sa.UniqueConstraint("builtin_key", name=op.f("uq_automation_rules_builtin_key")),
    )
    op.create_table(
        "automation_executions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("trigger_key", sa.String(length=120), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("detail", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rules.id"],
            name=op.f("fk_automation_executions_rule_id_automation_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_automation_executions_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_automation_executions_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_executions")),
        sa.UniqueConstraint(
            "rule_id",
            "subject",
            "trigger_key",
            name=op.f("uq_automation_executions_rule_id_subject_trigger_key"),
        ),
    )
    op.create_index(op.f("ix_automation_executions_rule_id"), "automation_executions", ["rule_id"])
    op.create_index(
        "ix_automation_executions_case_id_id", "automation_executions", ["case_id", "id"]
    )
    op.create_index("ix_automation_executions_created_at", "automation_executions", ["created_at"])
    op.create_table(
        "automation_scheduled_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=False),
        sa.Column("rule_version", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("action", _JSON, nullable=False),
        sa.Column("context", _JSON, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rules.id"],
            name=op.f("fk_automation_scheduled_actions_rule_id_automation_rules"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["automation_executions.id"],
            name=op.f("fk_automation_scheduled_actions_execution_id_automation_executions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["case_id"],
            ["cases.id"],
            name=op.f("fk_automation_scheduled_actions_case_id_cases"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_automation_scheduled_actions_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_scheduled_actions")),
    )
    op.create_index(
        op.f("ix_automation_scheduled_actions_rule_id"),
        "automation_scheduled_actions",
        ["rule_id"],
    )
    op.create_index(
        op.f("ix_automation_scheduled_actions_execution_id"),
        "automation_scheduled_actions",
        ["execution_id"],
    )
    op.create_index(
        "ix_automation_scheduled_actions_state_due",
        "automation_scheduled_actions",
        ["state", "due_at"],
    )
    op.bulk_insert(
        rules,
        [
            {
                **rule,
                "enabled": True,
                "allow_rule_events": False,
                "version": 1,
                "updated_at": now,
                "updated_by_id": None,
                "created_at": now,
            }
            for rule in DEFAULT_RULES
        ],
    )


def downgrade() -> None:
    op.drop_table("automation_scheduled_actions")
    op.drop_table("automation_executions")
    op.drop_table("automation_rules")
