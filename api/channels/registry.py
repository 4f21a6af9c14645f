"""Which sender delivers each channel, built from the settings."""

from __future__ import annotations

from api.config import Settings
from api.conversations.models import Channel
from api.outbox.senders import ChannelSender


def build_senders(settings: Settings) -> dict[Channel, ChannelSender]:
    senders: dict[Channel, ChannelSender] = {}
    try:
        from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
    except ImportError:  # the adapter is optional while being built
        pass
    else:
        senders[Channel.WHATSAPP] = TwilioWhatsAppSender.from_settings(settings)
    try:
        from api.channels.email.sender import SmtpEmailSender
    except ImportError:
        pass
    else:
        if settings.smtp.host:
            senders[Channel.EMAIL] = SmtpEmailSender.from_settings(settings)
    return senders
