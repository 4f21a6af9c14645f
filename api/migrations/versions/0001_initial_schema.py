"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-24 17:14:32.185834
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from api.db import UTCDateTime

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "analysts",
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column(
            "role",
            sa.Enum(
                "analyst",
                "supervisor",
                "admin",
                name="role",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analysts")),
        sa.UniqueConstraint("email", name=op.f("uq_analysts_email")),
    )
    op.create_table(
        "brands",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("legal_name", sa.String(length=200), nullable=True),
        sa.Column("base_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("floor_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("max_installments", sa.Integer(), nullable=False),
        sa.Column("min_installment_amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column("response_days", sa.Integer(), nullable=False),
        sa.Column("payment_instructions", sa.Text(), nullable=False),
        sa.Column("pix_key", sa.String(length=120), nullable=True),
        sa.Column("payee_name", sa.String(length=120), nullable=True),
        sa.Column("payee_city", sa.String(length=60), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "floor_amount <= base_amount", name=op.f("ck_brands_floor_not_above_base")
        ),
        sa.CheckConstraint("max_installments >= 1", name=op.f("ck_brands_installments_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brands")),
        sa.UniqueConstraint("name", name=op.f("uq_brands_name")),
    )
    op.create_table(
        "case_ref_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year", name=op.f("pk_case_ref_counters")),
    )
    op.create_table(
        "infringers",
        sa.Column(
            "kind",
            sa.Enum(
                "person",
                "company",
                name="infringerkind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("document", sa.String(length=14), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_infringers")),
        sa.UniqueConstraint("document", name=op.f("uq_infringers_document")),
    )
    op.create_table(
        "cases",
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("brand_id", sa.Integer(), nullable=False),
        sa.Column("infringer_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "DETECTADO",
                "EM_TRIAGEM",
                "APTO_NOTIFICAR",
                "NOTIFICADO",
                "SEM_RESPOSTA",
                "EM_ATENDIMENTO",
                "EM_NEGOCIACAO",
                "EM_CONTESTACAO",
                "DESCARTADO",
                "ESCALADO_JURIDICO",
                "ACORDO_PROPOSTO",
                "ACORDO_ASSINADO",
                "AGUARDANDO_PAGAMENTO",
                "PAGO",
                "ACORDO_DESCUMPRIDO",
                "ENCERRADO",
                "REABERTO",
                name="casestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("status_changed_at", UTCDateTime(), nullable=True),
        sa.Column("close_reason", sa.String(length=200), nullable=True),
        sa.Column("claimed_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("agreed_amount", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column("agreed_installments", sa.Integer(), nullable=True),
        sa.Column("notice_sent_at", UTCDateTime(), nullable=True),
        sa.Column("response_deadline", sa.Date(), nullable=True),
        sa.Column("notice_url", sa.String(length=500), nullable=True),
        sa.Column("import_key", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["brand_id"], ["brands.id"], name=op.f("fk_cases_brand_id_brands")),
        sa.ForeignKeyConstraint(
            ["infringer_id"], ["infringers.id"], name=op.f("fk_cases_infringer_id_infringers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("import_key", name=op.f("uq_cases_import_key")),
        sa.UniqueConstraint("reference", name=op.f("uq_cases_reference")),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cases_brand_id"), ["brand_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_infringer_id"), ["infringer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cases_status"), ["status"], unique=False)

    op.create_table(
        "contact_points",
        sa.Column(
            "kind",
            sa.Enum(
                "phone",
                "email",
                "email_domain",
                name="contactkind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("infringer_id", sa.Integer(), nullable=True),
        sa.Column("opted_out_at", UTCDateTime(), nullable=True),
        sa.Column("opt_out_reason", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["infringer_id"],
            ["infringers.id"],
            name=op.f("fk_contact_points_infringer_id_infringers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_points")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_contact_points_kind_value")),
    )
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_points_infringer_id"), ["infringer_id"], unique=False
        )

    op.create_table(
        "conversations",
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("contact_point_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "whatsapp",
                "email",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column(
            "holder",
            sa.Enum(
                "bot",
                "waiting_human",
                "human",
                name="holder",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("handoff_reason", sa.String(length=200), nullable=True),
        sa.Column("handoff_at", UTCDateTime(), nullable=True),
        sa.Column("last_inbound_at", UTCDateTime(), nullable=True),
        sa.Column("last_outbound_at", UTCDateTime(), nullable=True),
        sa.Column("follow_up_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analyst_id"], ["analysts.id"], name=op.f("fk_conversations_analyst_id_analysts")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_conversations_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["contact_point_id"],
            ["contact_points.id"],
            name=op.f("fk_conversations_contact_point_id_contact_points"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversations")),
    )
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_conversations_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            "ix_conversations_channel_address", ["channel", "address"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_conversations_contact_point_id"), ["contact_point_id"], unique=False
        )

    op.create_table(
        "listings",
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("marketplace", sa.String(length=40), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "removal_pending",
                "removed",
                "relisted",
                name="listingstatus",
                native_enum=False,
                create_constraint=True,
                length=20,
            ),
            nullable=False,
        ),
        sa.Column("status_changed_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_listings_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_listings")),
        sa.UniqueConstraint("case_id", "url", name=op.f("uq_listings_case_id_url")),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_listings_case_id"), ["case_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column(
            "direction",
            sa.Enum(
                "inbound",
                "outbound",
                name="direction",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "channel",
            sa.Enum(
                "whatsapp",
                "email",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "author_kind",
            sa.Enum(
                "infringer",
                "bot",
                "analyst",
                "system",
                name="authorkind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=True),
        sa.Column("provider_id", sa.String(length=255), nullable=True),
        sa.Column(
            "delivery_status",
            sa.Enum(
                "received",
                "pending",
                "queued",
                "sending",
                "sent",
                "delivered",
                "read",
                "failed",
                "undelivered",
                name="deliverystatus",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("delivery_error", sa.String(length=500), nullable=True),
        sa.Column("status_updated_at", UTCDateTime(), nullable=True),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("intent_confidence", sa.Double(), nullable=True),
        sa.Column("entities", sa.JSON(), nullable=True),
        sa.Column(
            "meta",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analyst_id"], ["analysts.id"], name=op.f("fk_messages_analyst_id_analysts")
        ),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_messages_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_messages_conversation_id_conversations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("channel", "provider_id", name=op.f("uq_messages_channel_provider_id")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_messages_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_messages_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_messages_intent"), ["intent"], unique=False)

    op.create_table(
        "attachments",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=True),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("storage_path", sa.String(length=500), nullable=True),
        sa.Column("refused_reason", sa.String(length=200), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_attachments_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attachments")),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_message_id"), ["message_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_attachments_sha256"), ["sha256"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=False),
        sa.Column(
            "channel",
            sa.Enum(
                "whatsapp",
                "email",
                name="channel",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "in_flight",
                "done",
                "failed",
                name="outboxstate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_outbox_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_outbox_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("message_id", name=op.f("uq_outbox_message_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outbox_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index("ix_outbox_due", ["state", "next_attempt_at"], unique=False)

    op.create_table(
        "timeline_entries",
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column(
            "kind",
            sa.Enum(
                "message",
                "status_change",
                "handoff",
                "note",
                "alert",
                "listing",
                "delivery",
                "system",
                name="entrykind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "actor_kind",
            sa.Enum(
                "infringer",
                "bot",
                "analyst",
                "system",
                name="actorkind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("analyst_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(length=120), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analyst_id"], ["analysts.id"], name=op.f("fk_timeline_entries_analyst_id_analysts")
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_timeline_entries_case_id_cases")
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_timeline_entries_conversation_id_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_timeline_entries_message_id_messages")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_entries")),
    )
    with op.batch_alter_table("timeline_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_timeline_entries_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_timeline_entries_conversation_id"), ["conversation_id"], unique=False
        )
    _create_append_only_guards()


def downgrade() -> None:
    _drop_append_only_guards()

    with op.batch_alter_table("timeline_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_timeline_entries_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_timeline_entries_case_id"))

    op.drop_table("timeline_entries")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_due")
        batch_op.drop_index(batch_op.f("ix_outbox_conversation_id"))

    op.drop_table("outbox")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_sha256"))
        batch_op.drop_index(batch_op.f("ix_attachments_message_id"))

    op.drop_table("attachments")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_intent"))
        batch_op.drop_index(batch_op.f("ix_messages_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_messages_case_id"))

    op.drop_table("messages")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_listings_case_id"))

    op.drop_table("listings")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversations_contact_point_id"))
        batch_op.drop_index("ix_conversations_channel_address")
        batch_op.drop_index(batch_op.f("ix_conversations_case_id"))

    op.drop_table("conversations")
    with op.batch_alter_table("contact_points", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_contact_points_infringer_id"))

    op.drop_table("contact_points")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cases_status"))
        batch_op.drop_index(batch_op.f("ix_cases_infringer_id"))
        batch_op.drop_index(batch_op.f("ix_cases_brand_id"))

    op.drop_table("cases")
    op.drop_table("infringers")
    op.drop_table("case_ref_counters")
    op.drop_table("brands")
    op.drop_table("analysts")


# The timeline is append-only: the database itself refuses UPDATE and DELETE on its rows.
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION timeline_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'timeline_entries is append-only: % refused', TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$ LANGUAGE plpgsql;
"""


def _create_append_only_guards() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER timeline_entries_no_update_delete BEFORE UPDATE OR DELETE "
            "ON timeline_entries FOR EACH ROW EXECUTE FUNCTION timeline_entries_append_only()"
        )
    elif dialect == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER timeline_entries_no_{operation.lower()} BEFORE {operation} "
                "ON timeline_entries BEGIN "
                f"SELECT RAISE(ABORT, 'timeline_entries is append-only: {operation} refused'); END"
            )


def _drop_append_only_guards() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS timeline_entries_no_update_delete ON timeline_entries")
        op.execute("DROP FUNCTION IF EXISTS timeline_entries_append_only()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS timeline_entries_no_update")
        op.execute("DROP TRIGGER IF EXISTS timeline_entries_no_delete")
