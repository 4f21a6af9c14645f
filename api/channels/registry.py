"""Each channel's composer (registered with the outbound pipeline) and sender (built from the
settings for the outbox worker)."""

from __future__ import annotations

from api.channels.email.composer import EmailComposer
from api.channels.email.sender import SmtpEmailSender
from api.channels.whatsapp_twilio.composer import WhatsAppComposer
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
