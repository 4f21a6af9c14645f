"""Analyst accounts."""

from __future__ import annotations

import datetime as dt
import enum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from api.db import Base, CreatedAtMixin, IdMixin
from api.enums import str_enum


class Role(enum.StrEnum):
    ANALYST = "analyst"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLE_RANK = {Role.ANALYST: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}


class Analyst(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "analysts"

    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    role: Mapped[Role] = mapped_column(str_enum(Role, 16), default=Role.ANALYST)
    password_hash: Mapped[str] = mapped_column(sa.String(200))
    active: Mapped[bool] = mapped_column(default=True)

    def has_role(self, role: Role) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[role]


class SessionKind(enum.StrEnum):
    PANEL = "panel"
    API = "api"


class AuthSession(CreatedAtMixin, Base):
    """One login: a panel cookie or an API token carries its id (`jti`) and is honoured only
    while this row says it is live, so logout, a password change or a deactivation ends it
    on the server, whatever the browser or client still holds."""

    __tablename__ = "auth_sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    analyst_id: Mapped[int] = mapped_column(
        sa.ForeignKey("analysts.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[SessionKind] = mapped_column(str_enum(SessionKind, 16))
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class LoginAttempt(IdMixin, Base):
    """A login attempt counted against a limit (database backend of the login throttle).
    `key` is a digest of the scope and the account or client address, never the raw value."""

    __tablename__ = "login_attempts"
    __table_args__ = (sa.Index("ix_login_attempts_key_attempted_at", "key", "attempted_at"),)

    key: Mapped[str] = mapped_column(sa.String(64))
    attempted_at: Mapped[dt.datetime] = mapped_column(index=True)
