"""SMTP delivery of outbound e-mail for the outbox worker (aiosmtplib).

Failure policy: a 4xx reply, a dropped or refused connection, a timeout → retryable (the outbox
backs off and tries again); a 5xx reply → permanent, shown on the timeline. Authentication and
TLS-negotiation failures are our configuration, not the recipient: retryable, so mail waits for
the fix instead of being lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiosmtplib

from api.channels.email.composer import Firm, compose_message, make_message_id
from api.config import Settings
from api.conversations.models import Channel
from api.errors import ChannelDeliveryError
from api.outbox.senders import Envelope, SendResult
from api.storage import read_blob

_AUTH_CODES = frozenset({454, 530, 534, 535, 538})


@dataclass
class SmtpEmailSender:
    host: str
    port: int
    firm: Firm
    secret: str
    user: str | None = None
    password: str | None = None
    starttls: bool = True
    ssl: bool = False
    timeout: float = 30.0
    channel: Channel = Channel.EMAIL

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpEmailSender:
        smtp = settings.smtp
        assert smtp.host, "SMTP_HOST is required for the e-mail sender"
        return cls(
            host=smtp.host,
            port=smtp.port,
            firm=Firm.from_settings(settings),
            secret=settings.secret_key.get_secret_value(),
            user=smtp.user,
            password=smtp.password.get_secret_value() if smtp.password else None,
            starttls=smtp.starttls and not smtp.ssl,
            ssl=smtp.ssl,
        )

    async def send(self, envelope: Envelope) -> SendResult:
        message_id = make_message_id(
            message_id=envelope.message_id,
            conversation_id=envelope.conversation_id,
            secret=self.secret,
            domain=self.firm.domain,
        )
        message = compose_message(
            envelope,
            firm=self.firm,
            message_id=message_id,
            attachments=_load_attachments(envelope.attachments),
        )
        recipients = [envelope.to, *[str(a) for a in envelope.meta.get("cc") or [] if a]]
        try:
            errors, _response = await aiosmtplib.send(
                message,
                sender=self.firm.address,
                recipients=recipients,
                hostname=self.host,
                port=self.port,
                username=self.user,
                password=self.password,
                use_tls=self.ssl,
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise _refused(exc.recipients) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise _from_reply(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise ChannelDeliveryError(
                f"servidor SMTP indisponível: {type(exc).__name__}: {exc}"[:400], retryable=True
            ) from exc
        # Only the main recipient decides; a refused copy (cc) is not worth a resend.
        if envelope.to in errors:
            refused = errors[envelope.to]
            raise _from_reply(refused.code, refused.message)
        return SendResult(provider_id=message_id)


def _from_reply(code: int, text: str) -> ChannelDeliveryError:
    retryable = 400 <= code < 500 or code in _AUTH_CODES or code < 0
    kind = "temporário" if retryable else "permanente"
    return ChannelDeliveryError(
        f"SMTP {code} ({kind}): {' '.join(str(text).split())}"[:400],
        retryable=retryable,
        provider_code=str(code),
    )


def _refused(refusals: Sequence[aiosmtplib.SMTPRecipientRefused]) -> ChannelDeliveryError:
    first = refusals[0]
    error = _from_reply(first.code, f"{first.recipient}: {first.message}")
    # Retry only when every refusal is temporary.
    retryable = all(400 <= r.code < 500 for r in refusals)
    return ChannelDeliveryError(error.message, retryable=retryable, provider_code=str(first.code))


def _load_attachments(items: Sequence[dict[str, str]]) -> list[tuple[bytes, str, str]]:
    loaded: list[tuple[bytes, str, str]] = []
    for item in items:
        try:
            data = read_blob(item["path"])
        except (OSError, ValueError, KeyError) as exc:
            # The file is gone or the path is bad: retrying cannot bring it back.
            raise ChannelDeliveryError(
                f"anexo indisponível: {item.get('filename') or item.get('path')}",
                retryable=False,
            ) from exc
        loaded.append(
            (
                data,
                item.get("filename") or "anexo",
                item.get("content_type") or "application/octet-stream",
            )
        )
    return loaded


# The mailbox connectors (api/channels/mailboxes) attach files the same way.
load_attachments = _load_attachments
