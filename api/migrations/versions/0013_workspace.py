"""workspace: template versions, tags, restrictions

Message templates move into the database (the YAML catalog is their seed, version 1), every
edit a new version; case tags and follow-up date; who set an opt-out; a person's processing
restriction (LGPD); search indexes (trigram on PostgreSQL for names, addresses and listing URLs).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 08:00:00.000000
"""

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import sqlalchemy as sa
import yaml
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CATALOG = Path(__file__).resolve().parents[2] / "templates" / "catalog.yml"
_TRGM = (
    ("ix_infringers_name_trgm", "infringers", "name"),
    ("ix_contact_points_value_trgm", "contact_points", "value"),
    ("ix_listings_url_trgm", "listings", "url"),
)


def _seed_templates() -> None:
    data = yaml.safe_load(_CATALOG.read_text(encoding="utf-8")) or {}
    templates = sa.table(
        "message_templates",
        sa.column("id", sa.Integer()),
        sa.column("name", sa.String()),
        sa.column("current_version", sa.Integer()),
        sa.column("active", sa.Boolean()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    versions = sa.table(
        "message_template_versions",
        sa.column("template_id", sa.Integer()),
        sa.column("version", sa.Integer()),
        sa.column("description", sa.String()),
        sa.column("channels", sa.JSON()),
        sa.column("body", sa.Text()),
        sa.column("whatsapp_variables", sa.JSON()),
        sa.column("content_sid", sa.String()),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    if bind.dialect.name == "sqlite":  # stored without offset there (api/db.py UTCDateTime)
        now = now.replace(tzinfo=None)
    for number, item in enumerate(data.get("templates", []), 1):
        bind.execute(
            templates.insert().values(
                id=number, name=item["name"], current_version=1, active=True, created_at=now
            )
        )
        bind.execute(
            versions.insert().values(
                template_id=number,
                version=1,
                description=item.get("description", ""),
                channels=list(item.get("channels", ["whatsapp", "email"])),
                body=" ".join(str(item["body"]).split()),
                whatsapp_variables=list(item.get("whatsapp_variables", [])),
                content_sid=item.get("content_sid"),
                created_at=now,
            )
        )
    if bind.dialect.name == "postgresql":
        bind.execute(
            sa.text(
                "SELECT setval(pg_get_serial_sequence('message_templates', 'id'), "
                "GREATEST((SELECT MAX(id) FROM message_templates), 1))"
            )
        )


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "message_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_templates")),
        sa.UniqueConstraint("name", name=op.f("uq_message_templates_name")),
    )
    op.create_table(
        "message_template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("description", sa.String(length=300), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("whatsapp_variables", sa.JSON(), nullable=False),
        sa.Column("content_sid", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["template_id"],
            ["message_templates.id"],
            name=op.f("fk_message_template_versions_template_id_message_templates"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["analysts.id"],
            name=op.f("fk_message_template_versions_created_by_analysts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_template_versions")),
        sa.UniqueConstraint(
            "template_id", "version", name=op.f("uq_message_template_versions_template_id_version")
        ),
    )
    op.create_table(
        "case_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_tags_case_id_cases"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_tags")),
        sa.UniqueConstraint("case_id", "tag", name=op.f("uq_case_tags_case_id_tag")),
    )
    op.create_index(op.f("ix_case_tags_tag"), "case_tags", ["tag"])
    with op.batch_alter_table("cases") as batch_op:
        batch_op.add_column(sa.Column("follow_up_on", sa.Date(), nullable=True))
        batch_op.create_index(batch_op.f("ix_cases_follow_up_on"), ["follow_up_on"])
        batch_op.create_index("ix_cases_created_at_id", ["created_at", "id"])
        batch_op.create_index("ix_cases_response_deadline", ["response_deadline"])
    with op.batch_alter_table("contact_points") as batch_op:
        batch_op.add_column(sa.Column("opted_out_by", sa.String(length=120), nullable=True))
    with op.batch_alter_table("infringers") as batch_op:
        batch_op.add_column(
            sa.Column("processing_restricted_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("processing_restricted_by", sa.String(length=120), nullable=True)
        )
    # The case timeline is read newest-first per case; messages per conversation in order.
    op.create_index("ix_timeline_entries_case_id_id", "timeline_entries", ["case_id", "id"])
    op.create_index(
        "ix_timeline_entries_conversation_id_id", "timeline_entries", ["conversation_id", "id"]
    )
    # The inbox: open conversations by holder, oldest hand-off first.
    op.create_index(
        "ix_conversations_open_holder_handoff",
        "conversations",
        ["holder", "handoff_at", "id"],
        postgresql_where=sa.text("closed_at IS NULL"),
        sqlite_where=sa.text("closed_at IS NULL"),
    )
    # The cases list sorted by the infringer's name.
    op.create_index("ix_infringers_name", "infringers", ["name"])
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, table, column in _TRGM:
        op.create_index(
            name,
            table,
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )
    _seed_templates()


def downgrade() -> None:
    for name, table, _ in _TRGM:
        op.drop_index(name, table_name=table)
    op.drop_index("ix_infringers_name", table_name="infringers")
    op.drop_index("ix_conversations_open_holder_handoff", table_name="conversations")
    op.drop_index("ix_timeline_entries_conversation_id_id", table_name="timeline_entries")
    op.drop_index("ix_timeline_entries_case_id_id", table_name="timeline_entries")
    with op.batch_alter_table("infringers") as batch_op:
        batch_op.drop_column("processing_restricted_by")
        batch_op.drop_column("processing_restricted_at")
    with op.batch_alter_table("contact_points") as batch_op:
        batch_op.drop_column("opted_out_by")
    with op.batch_alter_table("cases") as batch_op:
        batch_op.drop_index("ix_cases_response_deadline")
        batch_op.drop_index("ix_cases_created_at_id")
        batch_op.drop_index(batch_op.f("ix_cases_follow_up_on"))
        batch_op.drop_column("follow_up_on")
    op.drop_index(op.f("ix_case_tags_tag"), table_name="case_tags")
    op.drop_table("case_tags")
    op.drop_table("message_template_versions")
    op.drop_table("message_templates")
