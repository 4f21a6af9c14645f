"""Message templates kept in the database: one row per template, one per version (never edited;
an edit is a new version, and a sent message records the version it used)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.db import Base, CreatedAtMixin, IdMixin


class StoredTemplate(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "message_templates"

    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    current_version: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[dt.datetime | None]

    versions: Mapped[list[TemplateVersion]] = relationship(
        back_populates="template", order_by="TemplateVersion.version"
    )


class TemplateVersion(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "message_template_versions"
    __table_args__ = (sa.UniqueConstraint("template_id", "version"),)

    template_id: Mapped[int] = mapped_column(
        sa.ForeignKey("message_templates.id", ondelete="CASCADE")
    )
    version: Mapped[int]
    description: Mapped[str] = mapped_column(sa.String(300), default="")
    channels: Mapped[list[str]] = mapped_column(sa.JSON)
    body: Mapped[str] = mapped_column(sa.Text)
    whatsapp_variables: Mapped[list[str]] = mapped_column(sa.JSON)
    content_sid: Mapped[str | None] = mapped_column(sa.String(64))
    created_by: Mapped[int | None] = mapped_column(sa.ForeignKey("analysts.id"))

    template: Mapped[StoredTemplate] = relationship(back_populates="versions")
