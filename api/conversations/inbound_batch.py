"""The one way in, for a batch: `do_receive_messages` does for each message exactly what
`do_receive_message` does (store it once by provider id; tie it to contact, conversation and
case; timeline entry, `message.received` event, the case engaged, a bot turn after commit), but
reads and writes the batch in a handful of statements instead of ~15 round trips a message.

Added for the e-mail initial sync (api/channels/email/imap.py); `do_receive_message` is
unchanged and stays the path for single messages. Restrictions, checked:
- a channel whose contacts are e-mail addresses (identification is then an exact lookup; phones
  have spelling variants and go one at a time);
- no two messages of a batch from the same sender or with the same provider id (the caller cuts
  its batch there), so no message's handling depends on another's.
A conflict with a concurrent writer (another process opened the same conversation meanwhile) is
resolved as `do_receive_message` resolves it; a concurrent insert of the same message makes it a
replay (created=False), as there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import OPEN_STATUSES, CaseStatus
from api.cases.models import Case
from api.cases.service import do_change_status
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import FREE_MAIL_DOMAINS, get_contact_points, normalize_address
from api.conversations.inbound import (
    InboundMessage,
    _attachment_row,
    _pending,
    _summary,
)
from api.conversations.models import (
    AuthorKind,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.conversations.outbound import get_composer
from api.conversations.scheduling import TurnRequest, request_turn_after_commit
from api.conversations.service import create_conversation
from api.events import about, emit
from api.events.kinds import MessageReceived
from api.identifiers.contact import email_domain
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor

_ENGAGE_FROM = (CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA)
_MESSAGES = cast(sa.Table, Message.__table__)
_CONTACT_POINTS = cast(sa.Table, ContactPoint.__table__)


@dataclass(frozen=True)
class ReceivedItem:
    message_id: int
    conversation: Conversation
    created: bool


async def do_receive_messages(
    session: AsyncSession, batch: Sequence[InboundMessage]
) -> list[ReceivedItem]:
    """`do_receive_message` for each message of `batch`, in order; flushes, never commits."""
    if not batch:
        return []
    kinds = {get_composer(inbound.channel).contact_kind for inbound in batch}
    if kinds != {ContactKind.EMAIL}:
        raise ValueError("do_receive_messages takes messages from e-mail addresses only")
    addresses = [normalize_address(ContactKind.EMAIL, inbound.sender) for inbound in batch]
    external_ids = [inbound.external_id for inbound in batch]
    if len(set(addresses)) != len(batch) or len(set(external_ids)) != len(batch):
        raise ValueError("a batch holds one message per sender and per provider id")

    contacts = await _identify(session, addresses)
    cases = await _cases(session, batch, contacts.values())
    conversations = await _conversations(session, batch, addresses, contacts, cases)

    # Idempotency lives in the database's unique (channel, provider_id), not in a prior read.
    rows = [
        {
            "conversation_id": conversation.id,
            "case_id": conversation.case_id,
            "direction": Direction.INBOUND,
            "channel": inbound.channel,
            "author_kind": AuthorKind.INFRINGER,
            "text": inbound.text,
            "subject": inbound.subject,
            "provider_id": inbound.external_id,
            "delivery_status": DeliveryStatus.RECEIVED,
            "meta": {**inbound.meta, "answerable": inbound.answerable},
            "raw": inbound.raw or None,
            "created_at": inbound.received_at,
            "handled_at": None if inbound.answerable else inbound.received_at,
        }
        for inbound, conversation in zip(batch, conversations, strict=True)
    ]
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    inserted = await session.execute(
        insert(_MESSAGES)
        .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
        .returning(_MESSAGES.c.id, _MESSAGES.c.provider_id),
        rows,
    )
    created = {str(provider_id): int(message_id) for message_id, provider_id in inserted.all()}
    replays = [i for i in external_ids if i not in created]
    existing: dict[str, tuple[int, int]] = {}
    if replays:  # a concurrent ingester stored them between our reads and our insert
        found = await session.execute(
            sa.select(Message.provider_id, Message.id, Message.conversation_id).where(
                Message.channel == batch[0].channel, Message.provider_id.in_(replays)
            )
        )
        existing = {str(p): (int(m), int(c)) for p, m, c in found.all()}

    results: list[ReceivedItem] = []
    for inbound, conversation in zip(batch, conversations, strict=True):
        message_id = created.get(inbound.external_id)
        if message_id is None:
            stored_id, conversation_id = existing[inbound.external_id]
            stored = await session.get(Conversation, conversation_id)
            assert stored is not None
            results.append(ReceivedItem(stored_id, stored, created=False))
            continue
        for item in inbound.attachments:
            session.add(_attachment_row(message_id, item))
        conversation.last_inbound_at = max(
            conversation.last_inbound_at or inbound.received_at, inbound.received_at
        )
        # What create_entry writes, without its flush per entry (flushed with the batch).
        session.add(
            TimelineEntry(
                kind=EntryKind.MESSAGE,
                actor_kind=Actor.infringer().kind,
                analyst_id=None,
                actor_name=Actor.infringer().name,
                summary=_summary(inbound),
                case_id=conversation.case_id,
                conversation_id=conversation.id,
                message_id=message_id,
                data={
                    "channel": str(inbound.channel),
                    "direction": "inbound",
                    "attachments": len(inbound.attachments),
                    "answerable": inbound.answerable,
                },
            )
        )
        emit(
            session,
            MessageReceived(
                **about(conversation=conversation, actor=Actor.infringer()),
                occurred_at=inbound.received_at,
                message_id=message_id,
                attachments=len(inbound.attachments),
                answerable=inbound.answerable,
            ),
        )
        if conversation.case_id is not None and inbound.answerable:
            linked = await session.get(Case, conversation.case_id)  # loaded above: no query
            if linked is not None and linked.status in _ENGAGE_FROM:
                await do_change_status(
                    session,
                    case=linked,
                    target=CaseStatus.EM_ATENDIMENTO,
                    actor=Actor.infringer(),
                    reason="o infrator respondeu",
                )
        if inbound.answerable:
            request_turn_after_commit(
                session,
                TurnRequest(
                    conversation_id=conversation.id,
                    message_id=message_id,
                    channel=inbound.channel,
                    media_pending=any(_pending(item) for item in inbound.attachments),
                ),
            )
        results.append(ReceivedItem(message_id, conversation, created=True))
    await session.flush()
    return results


async def _identify(session: AsyncSession, addresses: Sequence[str]) -> dict[str, ContactPoint]:
    """do_identify_sender for many addresses: known contacts, then new ones (tied to the
    infringer of a notified company domain, never a free-mail one) in one insert."""
    known = {
        c.value: c
        for c in await get_contact_points(session, kind=ContactKind.EMAIL, values=addresses)
    }
    missing = [a for a in addresses if a not in known]
    if missing:
        domains = {a: email_domain(a) for a in missing}
        wanted = sorted({d for d in domains.values() if d not in FREE_MAIL_DOMAINS})
        by_domain = (
            {
                c.value: c.infringer_id
                for c in await get_contact_points(
                    session, kind=ContactKind.EMAIL_DOMAIN, values=wanted
                )
            }
            if wanted
            else {}
        )
        insert = (
            postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
        )
        await session.execute(
            insert(_CONTACT_POINTS).on_conflict_do_nothing(index_elements=["kind", "value"]),
            [
                {
                    "kind": ContactKind.EMAIL,
                    "value": address,
                    "infringer_id": by_domain.get(domains[address]),
                }
                for address in missing
            ],
        )
        fresh = await session.scalars(
            sa.select(ContactPoint)
            .where(ContactPoint.kind == ContactKind.EMAIL, ContactPoint.value.in_(missing))
            .execution_options(populate_existing=True)
        )
        known.update({c.value: c for c in fresh.all()})
    return known


async def _cases(
    session: AsyncSession, batch: Sequence[InboundMessage], contacts: Iterable[ContactPoint]
) -> dict[int, Case]:
    """The open case of each contact's infringer (the newest) and every hinted case, loaded in
    one query each; keyed by case id, plus the infringer's open case under -infringer_id."""
    infringer_ids = sorted({c.infringer_id for c in contacts if c.infringer_id is not None})
    found: dict[int, Case] = {}
    if infringer_ids:
        rows = await session.scalars(
            sa.select(Case)
            .where(Case.infringer_id.in_(infringer_ids), Case.status.in_(OPEN_STATUSES))
            .order_by(Case.id.desc())
        )
        for case in rows.all():
            found.setdefault(-case.infringer_id, case)
            found[case.id] = case
    hints = sorted({i.case_hint for i in batch if i.case_hint is not None} - set(found))
    if hints:
        for case in (await session.scalars(sa.select(Case).where(Case.id.in_(hints)))).all():
            found[case.id] = case
    return found


async def _conversations(
    session: AsyncSession,
    batch: Sequence[InboundMessage],
    addresses: Sequence[str],
    contacts: dict[str, ContactPoint],
    cases: dict[int, Case],
) -> list[Conversation]:
    """The open conversation of each sender (opened when there is none), linked to the case
    as do_receive_message links it, and following the address the sender wrote from."""
    channel = batch[0].channel
    contact_ids = [contacts[a].id for a in addresses]
    rows = await session.scalars(
        sa.select(Conversation)
        .where(
            Conversation.channel == channel,
            Conversation.contact_point_id.in_(contact_ids),
            Conversation.closed_at.is_(None),
        )
        .order_by(Conversation.id.desc())
    )
    open_: dict[int, Conversation] = {}
    for row in rows.all():
        open_.setdefault(row.contact_point_id, row)

    chosen: list[Conversation | None] = []
    new: list[tuple[int, Conversation]] = []
    wanted_cases: list[Case | None] = []
    for index, (inbound, address) in enumerate(zip(batch, addresses, strict=True)):
        contact = contacts[address]
        case = cases.get(-contact.infringer_id) if contact.infringer_id is not None else None
        if inbound.case_hint is not None:
            case = cases.get(inbound.case_hint) or case
        wanted_cases.append(case)
        conversation = open_.get(contact.id)
        if conversation is None:
            conversation = Conversation(
                contact_point_id=contact.id,
                channel=channel,
                address=address,
                case_id=case.id if case is not None else None,
            )
            new.append((index, conversation))
        else:
            if conversation.case_id is None and case is not None:
                conversation.case_id = case.id
            if conversation.address != address:
                conversation.address = address
        chosen.append(conversation)
    if new:
        try:
            async with session.begin_nested():
                session.add_all([conversation for _, conversation in new])
        except IntegrityError:
            # Another process opened one of them meanwhile: one at a time, as
            # create_conversation resolves it (its savepoint, then the winner's row).
            for index, _ in new:
                contact = contacts[addresses[index]]
                opened = await create_conversation(
                    session,
                    contact=contact,
                    channel=channel,
                    address=addresses[index],
                    case=wanted_cases[index],
                )
                case = wanted_cases[index]
                if opened.case_id is None and case is not None:
                    opened.case_id = case.id
                if opened.address != addresses[index]:
                    opened.address = addresses[index]
                chosen[index] = opened
    result = [c for c in chosen if c is not None]
    assert len(result) == len(batch)
    return result
