"""One raw e-mail into the inbound pipeline: parse, keep the original, classify, map bounces to our
outbound message, match a case, and hand it to `do_receive_message` (the one way in).

Idempotent: a mail seen before (same Message-ID, or the same content hash when it has none) is
recognised by the messages table's unique (channel, provider_id) and changes nothing, so a
re-fetch after a crash or a UIDVALIDITY change never doubles a message.
"""

from __future__ import annotations

import datetime as dt
import enum
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.channels.email.classify import BounceReport, Classification, MailKind, classify
from api.channels.email.matching import MatchResult, match_email, match_emails
from api.channels.email.parser import (
    FULL_TEXT_LIMIT,
    ParsedAttachment,
    ParsedEmail,
    content_hash,
    parse_email,
    sanitize_html,
)
from api.channels.email.prepare import PreparedMail
from api.config import get_settings
from api.conversations.delivery import do_update_delivery_status
from api.conversations.inbound import InboundAttachment, InboundMessage, do_receive_message
from api.conversations.inbound_batch import do_receive_messages
from api.conversations.models import (
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.db import utcnow
from api.identifiers.contact import normalize_email
from api.identifiers.errors import InvalidIdentifier
from api.inbox.unmatched import Suggested, do_store_suggestions
from api.storage import StoredBlob, check_size, store_blob
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

# Bounces are matched to an outbound message sent to the failed address within this window
# when the report does not quote our Message-ID.
BOUNCE_LOOKBACK = dt.timedelta(days=14)
UNKNOWN_SENDER = "remetente-desconhecido@tratativa.invalid"


class Outcome(enum.StrEnum):
    STORED = "stored"  # a new inbound message
    DUPLICATE = "duplicate"  # seen before, nothing changed
    BOUNCE = "bounce"  # a delivery report applied to our outbound message


@dataclass(frozen=True)
class Ingested:
    outcome: Outcome
    external_id: str
    message_id: int | None = None  # the stored inbound message, or the bounced outbound one
    conversation_id: int | None = None
    case_id: int | None = None
    answerable: bool = False
    match: MatchResult | None = None


async def do_ingest_email(
    session: AsyncSession,
    raw: bytes,
    *,
    received_at: dt.datetime | None = None,
    source: Mapping[str, Any] | None = None,
    mailbox: Mapping[str, Any] | None = None,
) -> Ingested:
    """Store one raw mail (idempotently) and everything it says; flushes, never commits.

    `source` is the IMAP position; `mailbox` the connector's handle on the mail (mailbox id,
    provider, the provider's message and thread ids), kept as meta["mailbox"] so a reply goes
    back through that mailbox, in its thread (api/channels/mailboxes)."""
    parsed = parse_email(raw)
    external_id = parsed.message_id or content_hash(raw)
    existing = await session.scalar(
        sa.select(Message.id).where(
            Message.channel == Channel.EMAIL, Message.provider_id == external_id
        )
    )
    if existing is not None:
        return Ingested(Outcome.DUPLICATE, external_id, message_id=existing)
    return await _ingest_new(
        session,
        raw,
        parsed,
        _own_copy(parsed, classify(parsed)),
        external_id,
        safe_html=sanitize_html(parsed.html) if parsed.html else None,
        received_at=received_at,
        source=source,
        mailbox=mailbox,
    )


async def _ingest_new(
    session: AsyncSession,
    raw: bytes,
    parsed: ParsedEmail,
    classification: Classification,
    external_id: str,
    *,
    safe_html: str | None,
    received_at: dt.datetime | None,
    source: Mapping[str, Any] | None,
    mailbox: Mapping[str, Any] | None,
) -> Ingested:
    """A mail not stored before (as far as this transaction saw), one at a time."""
    raw_blob = store_blob(raw, "message/rfc822")
    if classification.bounce is not None:
        bounced = await do_apply_bounce(
            session, classification.bounce, raw_path=raw_blob.path, subject=parsed.subject
        )
        if bounced is not None:
            return Ingested(
                Outcome.BOUNCE,
                external_id,
                message_id=bounced.id,
                conversation_id=bounced.conversation_id,
                case_id=bounced.case_id,
            )
    match = await match_email(session, parsed)
    inbound = _inbound(
        raw, raw_blob, parsed, classification, match, external_id,
        safe_html=safe_html, received_at=received_at, source=source, mailbox=mailbox,
    )  # fmt: skip
    received = await do_receive_message(session, inbound)
    if not received.created:  # a concurrent ingester stored it between our check and insert
        return Ingested(Outcome.DUPLICATE, external_id, message_id=received.message.id)
    if received.conversation.case_id is None and match.suggestions:
        await do_store_suggestions(
            session,
            message_id=received.message.id,
            suggestions=[
                Suggested(c.case_id, c.rule, c.score, c.reason) for c in match.suggestions
            ],
        )
    return Ingested(
        Outcome.STORED,
        external_id,
        message_id=received.message.id,
        conversation_id=received.conversation.id,
        case_id=received.conversation.case_id,
        answerable=classification.answerable,
        match=match,
    )


def _inbound(
    raw: bytes,
    raw_blob: StoredBlob,
    parsed: ParsedEmail,
    classification: Classification,
    match: MatchResult,
    external_id: str,
    *,
    safe_html: str | None,
    received_at: dt.datetime | None,
    source: Mapping[str, Any] | None,
    mailbox: Mapping[str, Any] | None,
    attachment_blobs: Sequence[StoredBlob | None] = (),
) -> InboundMessage:
    blobs = _aligned(parsed, attachment_blobs)
    return InboundMessage(
        channel=Channel.EMAIL,
        external_id=external_id,
        sender=_sender(parsed),
        text=parsed.reply_text,
        received_at=received_at or utcnow(),
        raw={"raw_path": raw_blob.path, "size": len(raw), **dict(source or mailbox or {})},
        attachments=tuple(
            _inbound_attachment(a, blob) for a, blob in zip(parsed.attachments, blobs, strict=True)
        ),
        subject=parsed.subject[:500] or None,
        meta=_meta(
            parsed,
            classification,
            match,
            raw_blob.path,
            raw_blob.sha256,
            source,
            mailbox,
            safe_html,
            blobs,
        ),
        case_hint=match.case_id,
        answerable=classification.answerable,
    )


@dataclass(frozen=True)
class MailToIngest:
    """One fetched mail for `do_ingest_emails`: its bytes, what `prepare_mail` made of them
    (in a worker process), and where it came from (as for `do_ingest_email`)."""

    raw: bytes
    prepared: PreparedMail
    received_at: dt.datetime | None = None
    source: Mapping[str, Any] | None = None
    mailbox: Mapping[str, Any] | None = None


async def do_ingest_emails(session: AsyncSession, mails: Sequence[MailToIngest]) -> list[Ingested]:
    """`do_ingest_email` for a batch, in order, in the caller's one transaction; flushes, never
    commits. Every mail ends as it would alone (stored, duplicate, bounce, or kept raw when it
    could not be parsed), with the same rows, events and bot-turn requests.

    The mails go to the database in runs: consecutive mails that do not depend on one another
    are matched and stored together (a few statements per run, api.conversations.inbound_batch).
    A mail that does depend on one in the current run (the same sender, the same Message-ID, an
    answer to it) closes the run first, so it sees that mail stored, as it would one at a time;
    bounces and unparseable mail go one at a time."""
    ids = list(dict.fromkeys(m.prepared.external_id for m in mails))
    known: dict[str, int] = {}
    if ids:
        rows = await session.execute(
            sa.select(Message.provider_id, Message.id).where(
                Message.channel == Channel.EMAIL, Message.provider_id.in_(ids)
            )
        )
        known = {str(provider_id): int(message_id) for provider_id, message_id in rows.all()}
    ours = _our_address()
    results: list[Ingested | None] = [None] * len(mails)
    run: list[tuple[int, MailToIngest, ParsedEmail, Classification]] = []
    run_senders: set[str] = set()
    run_ids: set[str] = set()

    async def close_run() -> None:
        if not run:
            return
        done = await _ingest_run(session, [(m, p, c) for _, m, p, c in run])
        for (index, _, _, _), result in zip(run, done, strict=True):
            results[index] = result
            if result.message_id is not None and result.outcome is not Outcome.BOUNCE:
                known[result.external_id] = result.message_id
        run.clear()
        run_senders.clear()
        run_ids.clear()

    for index, mail in enumerate(mails):
        prepared = mail.prepared
        external_id = prepared.external_id
        if external_id in run_ids:
            await close_run()
        if prepared.parsed is None or prepared.classification is None:
            await close_run()
            results[index] = await do_ingest_unparseable(
                session,
                mail.raw,
                error=prepared.error or "não analisado",
                received_at=mail.received_at,
                source=mail.source,
                mailbox=mail.mailbox,
            )
            continue
        if external_id in known:
            results[index] = Ingested(Outcome.DUPLICATE, external_id, message_id=known[external_id])
            continue
        parsed = prepared.parsed
        classification = _own_copy(parsed, prepared.classification, ours)
        if classification.bounce is not None:
            # About our outbound mail, not about this run's inbound mail: applied in place.
            bounced = await do_apply_bounce(
                session,
                classification.bounce,
                raw_path=_raw_blob(mail).path,
                subject=parsed.subject,
            )
            if bounced is not None:
                results[index] = Ingested(
                    Outcome.BOUNCE,
                    external_id,
                    message_id=bounced.id,
                    conversation_id=bounced.conversation_id,
                    case_id=bounced.case_id,
                )
                continue
            # About no message of ours: stored as ordinary, unanswerable mail (below).
        sender = _sender(parsed)
        if sender in run_senders or any(i in run_ids for i in parsed.thread_ids):
            await close_run()
        run.append((index, mail, parsed, classification))
        run_senders.add(sender)
        run_ids.add(external_id)
    await close_run()
    return [result for result in results if result is not None]


def _raw_blob(mail: MailToIngest) -> StoredBlob:
    return mail.prepared.raw_blob or store_blob(mail.raw, "message/rfc822")


async def _ingest_run(
    session: AsyncSession, run: Sequence[tuple[MailToIngest, ParsedEmail, Classification]]
) -> list[Ingested]:
    clues = [mail.prepared.clues for mail, _, _ in run]
    matches = await match_emails(
        session,
        [parsed for _, parsed, _ in run],
        None if any(c is None for c in clues) else [c for c in clues if c is not None],
    )
    inbounds = [
        _inbound(
            mail.raw,
            _raw_blob(mail),
            parsed,
            classification,
            match,
            mail.prepared.external_id,
            safe_html=mail.prepared.safe_html,
            received_at=mail.received_at,
            source=mail.source,
            mailbox=mail.mailbox,
            attachment_blobs=mail.prepared.attachment_blobs,
        )
        for (mail, parsed, classification), match in zip(run, matches, strict=True)
    ]
    received = await do_receive_messages(session, inbounds)
    results: list[Ingested] = []
    for (_, _, classification), inbound, match, item in zip(
        run, inbounds, matches, received, strict=True
    ):
        if not item.created:  # a concurrent ingester stored it between our check and insert
            results.append(Ingested(Outcome.DUPLICATE, inbound.external_id, item.message_id))
            continue
        if item.conversation.case_id is None and match.suggestions:
            await do_store_suggestions(
                session,
                message_id=item.message_id,
                suggestions=[
                    Suggested(c.case_id, c.rule, c.score, c.reason) for c in match.suggestions
                ],
            )
        results.append(
            Ingested(
                Outcome.STORED,
                inbound.external_id,
                message_id=item.message_id,
                conversation_id=item.conversation.id,
                case_id=item.conversation.case_id,
                answerable=classification.answerable,
                match=match,
            )
        )
    return results


async def do_apply_bounce(
    session: AsyncSession, report: BounceReport, *, raw_path: str, subject: str
) -> Message | None:
    """Map a delivery report to the outbound e-mail it is about (by our Message-ID, else the
    newest mail sent to the failed address) and record the outcome; None when it is about no
    message of ours (the report is then stored as an ordinary, unanswerable inbound mail)."""
    message = await _bounced_message(session, report)
    if message is None:
        return None
    if ((message.meta or {}).get("bounce") or {}).get("raw_path") == raw_path:
        return message  # the same report fetched again (a UIDVALIDITY change): nothing new
    if report.failed:
        assert message.provider_id is not None
        await do_update_delivery_status(
            session,
            channel=Channel.EMAIL,
            provider_id=message.provider_id,
            status=DeliveryStatus.FAILED,
            error=report.describe(),
        )
    else:
        await create_entry(
            session,
            kind=EntryKind.DELIVERY,
            actor=Actor.system(),
            case_id=message.case_id,
            conversation_id=message.conversation_id,
            message_id=message.id,
            summary=f"Aviso do servidor de e-mail: {report.describe()}",
            data={"action": str(report.action), "status": report.status},
        )
    message.meta = {
        **(message.meta or {}),
        "bounce": {
            "action": str(report.action),
            "status": report.status,
            "diagnostic": report.diagnostic,
            "recipients": list(report.recipients),
            "raw_path": raw_path,
            "subject": subject[:200],
        },
    }
    await session.flush()
    return message


async def _bounced_message(session: AsyncSession, report: BounceReport) -> Message | None:
    if report.original_message_ids:
        found = await session.scalar(
            _bounced_by_id_statement(), {"ids": list(report.original_message_ids)}
        )
        if found is not None:
            return found
    if report.recipients:
        return await session.scalar(
            _bounced_by_recipient_statement(),
            {"recipients": list(report.recipients), "since": utcnow() - BOUNCE_LOOKBACK},
        )
    return None


# Built once: building these statements cost more than running them (an initial sync of a
# mailbox full of delivery reports looks up one or two per report).
@functools.cache
def _bounced_by_id_statement() -> sa.Select[Message]:
    """Our newest outbound mail among the Message-IDs a report names."""
    return (
        sa.select(Message)
        .where(
            Message.channel == Channel.EMAIL,
            Message.direction == Direction.OUTBOUND,
            Message.provider_id.in_(sa.bindparam("ids", expanding=True)),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


@functools.cache
def _bounced_by_recipient_statement() -> sa.Select[Message]:
    """Our newest outbound mail sent since `since` to one of the addresses a report names."""
    return (
        sa.select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(
            Message.channel == Channel.EMAIL,
            Message.direction == Direction.OUTBOUND,
            sa.func.lower(Conversation.address).in_(sa.bindparam("recipients", expanding=True)),
            Message.provider_id.is_not(None),
            Message.created_at >= sa.bindparam("since", type_=Message.created_at.type),
        )
        .order_by(Message.id.desc())
        .limit(1)
    )


async def do_ingest_unparseable(
    session: AsyncSession,
    raw: bytes,
    *,
    error: str,
    received_at: dt.datetime | None = None,
    source: Mapping[str, Any] | None = None,
    mailbox: Mapping[str, Any] | None = None,
) -> Ingested:
    """Keep a mail the pipeline could not handle (a bug, a pathological message) as an
    unanswerable inbound message with its raw original, so it is not lost and does not block
    the mailbox."""
    external_id = content_hash(raw)
    raw_blob = store_blob(raw, "message/rfc822")
    received = await do_receive_message(
        session,
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=external_id,
            sender=UNKNOWN_SENDER,
            text="[e-mail não processado automaticamente; veja o original]",
            received_at=received_at or utcnow(),
            raw={"raw_path": raw_blob.path, "size": len(raw)},
            meta={
                "raw_path": raw_blob.path,
                "raw_sha256": raw_blob.sha256,
                "ingest_error": error[:500],
                "email_kind": "unparsed",
                **({"imap": dict(source)} if source else {}),
                **({"mailbox": dict(mailbox)} if mailbox else {}),
            },
            answerable=False,
        ),
    )
    outcome = Outcome.STORED if received.created else Outcome.DUPLICATE
    return Ingested(outcome, external_id, message_id=received.message.id)


def _own_copy(
    parsed: ParsedEmail, classification: Classification, ours: str | None = None
) -> Classification:
    if classification.kind is MailKind.REPLY and _from_ourselves(parsed, ours):
        # A copy of our own mail (a Bcc, a forwarding rule): answering it would loop.
        return Classification(MailKind.AUTO_REPLY, "enviado pelo nosso próprio endereço")
    return classification


def _from_ourselves(parsed: ParsedEmail, ours: str | None = None) -> bool:
    ours = _our_address() if ours is None else ours
    return bool(ours) and parsed.from_address == ours


def _our_address() -> str:
    return parseaddr(get_settings().email_from)[1].lower()


def _sender(parsed: ParsedEmail) -> str:
    """The sender's address as identification accepts it; odd ones (quoted local parts, no
    From) are kept in meta and filed under one placeholder contact for an analyst to sort."""
    try:
        return normalize_email(parsed.from_address or "")
    except InvalidIdentifier:
        return UNKNOWN_SENDER


def _aligned(
    parsed: ParsedEmail, blobs: Sequence[StoredBlob | None]
) -> Sequence[StoredBlob | None]:
    """The stored blob of each attachment (see PreparedMail.attachment_blobs), None where the
    worker stored none; all None when the mail was parsed here (no blobs). Blobs that do not
    line up with the attachments are a bug: the zips over them are strict and raise."""
    return blobs or (None,) * len(parsed.attachments)


def _inbound_attachment(
    item: ParsedAttachment, blob: StoredBlob | None = None
) -> InboundAttachment:
    filename = item.filename or (f"{item.content_id}" if item.content_id else None)
    if blob is not None:  # written by the parse worker, within the size limit
        return InboundAttachment(
            content_type=item.content_type,
            data=None,
            filename=filename,
            size=blob.size,
            stored=blob,
        )
    refused = check_size(len(item.data))
    if not item.data:
        refused = refused or "anexo vazio"
    return InboundAttachment(
        content_type=item.content_type,
        data=None if refused else item.data,
        filename=filename,
        refused_reason=refused,
        size=len(item.data),
    )


def _meta(
    parsed: ParsedEmail,
    classification: Classification,
    match: MatchResult,
    raw_path: str,
    raw_sha256: str,
    source: Mapping[str, Any] | None,
    mailbox: Mapping[str, Any] | None = None,
    safe_html: str | None = None,
    attachment_blobs: Sequence[StoredBlob | None] = (),
) -> dict[str, Any]:
    """What the panel and the composer read later; documented keys, JSON-safe values."""
    html = safe_html
    inline = {
        a.content_id: (blob or store_blob(a.data, a.content_type)).sha256
        for a, blob in zip(parsed.attachments, _aligned(parsed, attachment_blobs), strict=True)
        if a.inline
        and a.content_id
        and (
            (blob is not None and check_size(blob.size) is None)
            or (a.data and check_size(len(a.data)) is None)
        )
    }
    meta: dict[str, Any] = {
        "message_id": parsed.message_id,
        "in_reply_to": parsed.in_reply_to[0] if parsed.in_reply_to else None,
        "references": list(parsed.references),
        "from": parsed.from_address,
        "from_name": parsed.from_name,
        "reply_to": parsed.reply_to,
        "to": list(parsed.to),
        "cc": list(parsed.cc),
        "date": parsed.date.isoformat() if parsed.date else None,
        "auto_submitted": parsed.header("Auto-Submitted"),
        "email_kind": str(classification.kind),
        "raw_path": raw_path,
        "raw_sha256": raw_sha256,
        "full_text": parsed.text[:FULL_TEXT_LIMIT],
        "html": html,
        "inline_images": inline,
        "match_rule": match.rule,
        "match_reason": match.reason,
    }
    if classification.kind is not MailKind.REPLY:
        meta["auto_reason"] = classification.reason
    if source:
        meta["imap"] = dict(source)
    if mailbox:
        meta["mailbox"] = dict(mailbox)
    return meta
