"""Typed models of the Cloud API webhook (entry[].changes[].value) and the send answer.

https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
Unknown fields are kept (Meta adds them often); only what we read is declared.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Text(_Model):
    body: str = ""


class Media(_Model):
    id: str
    mime_type: str | None = None
    sha256: str | None = None
    caption: str | None = None
    filename: str | None = None
    voice: bool | None = None


class Location(_Model):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Reply(_Model):
    id: str
    title: str = ""
    description: str | None = None


class Interactive(_Model):
    type: str
    button_reply: Reply | None = None
    list_reply: Reply | None = None


class Button(_Model):
    text: str = ""
    payload: str | None = None


class Reaction(_Model):
    message_id: str | None = None
    emoji: str | None = None


class Context(_Model):
    from_: str | None = Field(default=None, alias="from")
    id: str | None = None


class Error(_Model):
    code: int
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None

    @property
    def detail(self) -> str:
        details = (self.error_data or {}).get("details")
        return str(details or self.message or self.title or "")


class Message(_Model):
    from_: str = Field(alias="from")
    id: str
    timestamp: str | None = None
    type: str
    text: Text | None = None
    image: Media | None = None
    document: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    context: Context | None = None
    errors: list[Error] = Field(default_factory=list)

    def media(self) -> Media | None:
        return self.image or self.document or self.audio or self.video or self.sticker


class Profile(_Model):
    name: str | None = None


class Contact(_Model):
    wa_id: str
    profile: Profile | None = None


class Status(_Model):
    id: str
    status: str
    timestamp: str | None = None
    recipient_id: str | None = None
    errors: list[Error] = Field(default_factory=list)


class Metadata(_Model):
    display_phone_number: str
    phone_number_id: str


class Value(_Model):
    messaging_product: str | None = None
    metadata: Metadata
    contacts: list[Contact] = Field(default_factory=list)
    messages: list[Message] = Field(default_factory=list)
    statuses: list[Status] = Field(default_factory=list)
    errors: list[Error] = Field(default_factory=list)


class Change(_Model):
    field: str
    value: dict[str, Any]


class Entry(_Model):
    id: str
    changes: list[Change] = Field(default_factory=list)


class Webhook(_Model):
    object: str
    entry: list[Entry] = Field(default_factory=list)


class SentMessage(_Model):
    id: str
    message_status: str | None = None


class SendAnswer(_Model):
    messaging_product: str | None = None
    messages: list[SentMessage] = Field(default_factory=list)


class GraphError(_Model):
    message: str = ""
    type: str | None = None
    code: int | None = None
    error_subcode: int | None = None
    error_data: dict[str, Any] | None = None
    fbtrace_id: str | None = None


class MediaInfo(_Model):
    url: str
    mime_type: str | None = None
    sha256: str | None = None
    file_size: int | None = None
    id: str | None = None
