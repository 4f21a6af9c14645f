"""Each channel's composer (registered with the outbound pipeline), sender (built from the
settings for the outbox worker) and media fetcher (files a webhook only referenced, downloaded
after its acknowledgement; the turn scheduler and the worker run them)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Protocol

from api.channels.email.composer import EmailComposer
from api.channels.email.sender import SmtpEmailSender
from api.channels.whatsapp_twilio.composer import WhatsAppComposer
from api.channels.whatsapp_twilio.fetching import fetch_due_media
from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.config import Settings
from api.conversations.models import Channel
from api.conversations.outbound import register_composer
from api.outbox.senders import ChannelSender


def install() -> None:
    """Register every channel's composer (idempotent)."""
    register_composer(EmailComposer())
    register_composer(WhatsAppComposer())


def build_senders(settings: Settings) -> dict[Channel, ChannelSender]:
    senders: dict[Channel, ChannelSender] = {
        Channel.WHATSAPP: TwilioWhatsAppSender.from_settings(settings)
    }
    if settings.smtp.host:
        senders[Channel.EMAIL] = SmtpEmailSender.from_settings(settings)
    return senders


class MediaFetcher(Protocol):
    def __call__(self, *, message_id: int | None = None) -> Awaitable[list[int]]:
        """Fetch the due pending media (of one message, or any); returns the ids of the
        conversations whose waiting turns may now run."""


def media_fetchers() -> dict[Channel, MediaFetcher]:
    """The channels whose inbound media may arrive as references to fetch later."""
    return {Channel.WHATSAPP: fetch_due_media}
