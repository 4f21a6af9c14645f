"""Each channel's composer (registered with the outbound pipeline), sender (built from the
settings for the outbox worker) and media fetcher (files a webhook only referenced, downloaded
after its acknowledgement; the turn scheduler and the worker run them). WhatsApp has one
composer and one sender over every provider (api.channels.numbers): each provider package
implements the adapter protocol (verify / parse / send / statuses) and is listed here."""

from __future__ import annotations

from collections.abc import Awaitable
from functools import lru_cache
from typing import Protocol

from api.channels.email.composer import EmailComposer
from api.channels.email.sender import SmtpEmailSender
from api.channels.mailboxes.sender import MailboxEmailSender
from api.channels.numbers.models import Provider
from api.channels.numbers.protocol import WhatsAppAdapter
from api.channels.numbers.sender import AdapterDownloader, WhatsAppRouter
from api.channels.whatsapp_360dialog.adapter import Dialog360Adapter
from api.channels.whatsapp_meta.adapter import MetaAdapter
from api.channels.whatsapp_twilio.composer import WhatsAppComposer
from api.channels.whatsapp_twilio.fetching import fetch_due_media, register_media_downloader
from api.channels.whatsapp_twilio.sender import TwilioWhatsAppSender
from api.channels.whatsapp_ultramsg.adapter import UltramsgAdapter
from api.channels.whatsapp_zapi.adapter import ZapiAdapter
from api.config import Settings
from api.conversations.models import Channel
from api.conversations.outbound import register_composer
from api.outbox.senders import ChannelSender


@lru_cache(maxsize=1)
def whatsapp_adapters() -> dict[Provider, WhatsAppAdapter]:
    """The WhatsApp providers other than Twilio (whose path predates the protocol)."""
    return {
        Provider.META: MetaAdapter(),
        Provider.D360: Dialog360Adapter(),
        Provider.ZAPI: ZapiAdapter(),
        Provider.ULTRAMSG: UltramsgAdapter(),
    }


def install() -> None:
    """Register every channel's composer and media downloader (idempotent)."""
    register_composer(EmailComposer())
    register_composer(WhatsAppComposer())
    for provider, adapter in whatsapp_adapters().items():
        register_media_downloader(provider.value, AdapterDownloader(adapter))


def build_senders(settings: Settings) -> dict[Channel, ChannelSender]:
    senders: dict[Channel, ChannelSender] = {
        Channel.WHATSAPP: WhatsAppRouter(
            twilio=TwilioWhatsAppSender.from_settings(settings),
            # Fresh adapters: the senders' HTTP clients belong to the loop that builds them.
            adapters={
                Provider.META: MetaAdapter(),
                Provider.D360: Dialog360Adapter(),
                Provider.ZAPI: ZapiAdapter(),
                Provider.ULTRAMSG: UltramsgAdapter(),
            },
        )
    }
    # E-mail: a reply to mail read through a Gmail/Graph mailbox goes back through it; the rest
    # (and IMAP mailboxes' replies) by SMTP.
    senders[Channel.EMAIL] = MailboxEmailSender(
        fallback=SmtpEmailSender.from_settings(settings) if settings.smtp.host else None
    )
    return senders


class MediaFetcher(Protocol):
    def __call__(self, *, message_id: int | None = None) -> Awaitable[list[int]]:
        """Fetch the due pending media (of one message, or any); returns the ids of the
        conversations whose waiting turns may now run."""


def media_fetchers() -> dict[Channel, MediaFetcher]:
    """The channels whose inbound media may arrive as references to fetch later."""
    return {Channel.WHATSAPP: fetch_due_media}
