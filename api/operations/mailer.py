"""Alert digests by SMTP, through the e-mail channel's own sender (same server settings,
TLS, and failure policy: 4xx/connection retryable, 5xx permanent)."""

from __future__ import annotations

from api.channels.email.sender import SmtpEmailSender
from api.config import Settings
from api.outbox.senders import Envelope

DIGEST_AUTHOR = "Central de alertas do Tratativa"


class SmtpDigestSender:
    """A DigestSender (api/operations/digests.py) over the configured SMTP server."""

    def __init__(self, smtp: SmtpEmailSender) -> None:
        self._smtp = smtp

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpDigestSender | None:
        """None when no SMTP server is configured (digests wait in their table)."""
        if not settings.smtp.host:
            return None
        return cls(SmtpEmailSender.from_settings(settings))

    async def send_digest(
        self, *, digest_id: int, to: str, name: str, subject: str, body: str
    ) -> str:
        # conversation_id 0 belongs to no conversation: the digest's Message-ID (derived from
        # both ids) can never equal one of a message to an infringer.
        envelope = Envelope(
            message_id=digest_id,
            conversation_id=0,
            channel=self._smtp.channel,
            to=to,
            text=body,
            subject=subject,
            meta={"author_kind": "analyst", "author_name": DIGEST_AUTHOR, "recipient_name": name},
        )
        result = await self._smtp.send(envelope)
        return result.provider_id
