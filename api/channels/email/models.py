"""E-mail channel state: IMAP progress per mailbox generation (case suggestions for unmatched
mail live in api/inbox/models.py)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin, utcnow


class ImapCursor(IdMixin, CreatedAtMixin, Base):
    """The last UID ingested from one mailbox generation: (account, folder, UIDVALIDITY).

    A new UIDVALIDITY starts a new row at UID 0; mail seen before is then skipped by the
    Message-ID unique constraint, never by UID.
    """

    __tablename__ = "email_imap_cursors"
    __table_args__ = (sa.UniqueConstraint("account", "folder", "uidvalidity"),)

    account: Mapped[str] = mapped_column(sa.String(320))  # user@host:port
    folder: Mapped[str] = mapped_column(sa.String(200))
    uidvalidity: Mapped[int] = mapped_column(sa.BigInteger)
    last_uid: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
