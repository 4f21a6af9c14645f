"""mailboxes: imap/gmail/graph connectors

One `mailboxes` table for every provider. Existing IMAP progress (email_imap_cursors, one row per
account/folder/UIDVALIDITY) becomes one `imap` mailbox per account and folder, its cursor the
newest generation's "uidvalidity:last_uid"; the password stays in IMAP_PASSWORD (only the
variable's name is stored). email_imap_cursors itself stays: the IMAP connector keeps its
per-generation progress there.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 08:00:00.000000
"""

import datetime as dt
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import JSONType, UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "mailboxes",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column(
            "provider",
            sa.Enum(
                "imap",
                "gmail",
                "graph",
                name="mailboxprovider",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("credentials_env", JSONType, nullable=False),
        sa.Column("token_sealed", sa.Text(), nullable=True),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column(
            "state",
            sa.Enum(
                "active",
                "failing",
                "throttled",
                "disabled",
                name="mailboxstate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_synced_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("sync_requested_at", UTCDateTime(), nullable=True),
        sa.Column("push_id", sa.String(length=200), nullable=True),
        sa.Column("push_expires_at", UTCDateTime(), nullable=True),
        sa.Column("push_secret_hash", sa.String(length=64), nullable=True),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailboxes")),
        sa.UniqueConstraint("name", name=op.f("uq_mailboxes_name")),
    )
    op.create_index("ix_mailboxes_due", "mailboxes", ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_mailboxes_address", "mailboxes", ["address"], unique=False)
    _migrate_imap_cursors()


def _migrate_imap_cursors() -> None:
    """One imap mailbox per (account, folder) already read, at its newest generation's cursor."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.text(
            "SELECT account, folder, uidvalidity, last_uid FROM email_imap_cursors "
            "ORDER BY account, folder, updated_at, id"
        )
    ).all()
    newest: dict[tuple[str, str], tuple[int, int]] = {}
    for account, folder, uidvalidity, last_uid in rows:
        newest[(account, folder)] = (int(uidvalidity), int(last_uid))
    mailboxes = sa.table(
        "mailboxes",
        sa.column("name", sa.String),
        sa.column("provider", sa.String),
        sa.column("address", sa.String),
        sa.column("config", JSONType),
        sa.column("credentials_env", JSONType),
        sa.column("cursor", sa.Text),
        sa.column("state", sa.String),
        sa.column("failures", sa.Integer),
        sa.column("next_attempt_at", UTCDateTime()),
        sa.column("updated_at", UTCDateTime()),
        sa.column("created_at", UTCDateTime()),
    )
    now = dt.datetime.now(dt.UTC)
    for index, ((account, folder), (uidvalidity, last_uid)) in enumerate(sorted(newest.items())):
        user, _, hostport = account.rpartition("@")
        host, _, port = hostport.rpartition(":")
        op.execute(
            mailboxes.insert().values(
                name=f"imap-{index + 1}" if index else "imap",
                provider="imap",
                address=(user if "@" in user else account)[:320].lower(),
                # The worker's IMAP loop (IMAP_* settings) keeps reading it: "from_settings".
                config={
                    "host": host,
                    "port": int(port) if port.isdigit() else 993,
                    "user": user,
                    "folder": folder,
                    "from_settings": True,
                },
                credentials_env={"password": "IMAP_PASSWORD"},
                cursor=f"{uidvalidity}:{last_uid}",
                state="active",
                failures=0,
                next_attempt_at=now,
                updated_at=now,
                created_at=now,
            )
        )


def downgrade() -> None:
    op.drop_index("ix_mailboxes_address", table_name="mailboxes")
    op.drop_index("ix_mailboxes_due", table_name="mailboxes")
    op.drop_table("mailboxes")
