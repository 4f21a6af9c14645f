"""Finding who wrote: contact points, infringers and their open case."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.models import Case
from api.cases.service import get_infringer_with_open_case
from api.contacts.models import ContactKind, ContactPoint, Infringer
from api.conversations.models import Channel, Conversation
from api.errors import Conflict, NotFound, ValidationFailed
from api.events import about, emit
from api.events.kinds import ContactOptOutLifted
from api.identifiers.contact import email_domain, normalize_email
from api.identifiers.phones import normalize_phone, phone_variants
from api.timeline.models import EntryKind
from api.timeline.service import Actor, create_entry

# Domains shared by many people: an address there says nothing about the company behind it.
FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "hotmail.com", "hotmail.com.br", "outlook.com",
        "outlook.com.br", "live.com", "msn.com", "yahoo.com", "yahoo.com.br", "icloud.com",
        "me.com", "uol.com.br", "bol.com.br", "terra.com.br", "ig.com.br", "globo.com",
        "globomail.com", "r7.com", "zipmail.com.br", "proton.me", "protonmail.com", "aol.com",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Identification:
    """The result of identifying an inbound address."""

    contact: ContactPoint
    infringer: Infringer | None
    case: Case | None
    matched_by: str  # "phone", "email", "email_domain" or "unmatched"
    # The normalized address exactly as it wrote (a phone keeps the form it came from, with or
    # without the ninth digit, even when the contact was stored under the other form): replies
    # go here, never to another address of the contact.
    address: str
    # With a channel asked for: the contact's open conversation on it, read in the same
    # statement as the contact (None: it has none, or the contact is new).
    conversation: Conversation | None = None


def normalize_address(kind: ContactKind, raw: str) -> str:
    """E.164 for phones, lowercased for e-mail; raises InvalidIdentifier on junk."""
    if kind is ContactKind.PHONE:
        return normalize_phone(raw)
    if kind is ContactKind.EMAIL:
        return normalize_email(raw)
    return raw.strip().lower().lstrip("@")


@functools.cache
def _contact_points_statement() -> sa.Select[ContactPoint]:
    """Contact points of a kind among some values, built once (each message looks its sender
    up: building the statement per call cost more CPU than running it); each call binds them."""
    return (
        sa.select(ContactPoint)
        .where(
            ContactPoint.kind == sa.bindparam("kind", type_=ContactPoint.kind.type),
            ContactPoint.value.in_(
                sa.bindparam("values", type_=ContactPoint.value.type, expanding=True)
            ),
        )
        .order_by(ContactPoint.id)
    )


@functools.cache
def _contact_points_with_conversation_statement() -> sa.Select[ContactPoint, Conversation | None]:
    """`_contact_points_statement`, each contact point with its open conversation on the bound
    `channel` (the database holds at most one per contact and channel), or NULL."""
    return (
        sa.select(ContactPoint, Conversation)
        .outerjoin(
            Conversation,
            sa.and_(
                Conversation.contact_point_id == ContactPoint.id,
                Conversation.channel == sa.bindparam("channel", type_=Conversation.channel.type),
                Conversation.closed_at.is_(None),
            ),
        )
        .where(
            ContactPoint.kind == sa.bindparam("kind", type_=ContactPoint.kind.type),
            ContactPoint.value.in_(
                sa.bindparam("values", type_=ContactPoint.value.type, expanding=True)
            ),
        )
        .order_by(ContactPoint.id)
    )


async def get_contact_points(
    session: AsyncSession, *, kind: ContactKind, values: Sequence[str]
) -> Sequence[ContactPoint]:
    params = {"kind": kind, "values": list(values)}
    return (await session.scalars(_contact_points_statement(), params)).all()


def _address_values(kind: ContactKind, value: str) -> list[str]:
    return phone_variants(value) if kind is ContactKind.PHONE else [value]


def _best(found: Sequence[ContactPoint], value: str) -> ContactPoint | None:
    """Prefer the exact form, then one already tied to an infringer."""
    ranked = sorted(found, key=lambda c: (c.value != value, c.infringer_id is None))
    return ranked[0] if ranked else None


async def get_contact_point(
    session: AsyncSession, *, kind: ContactKind, value: str
) -> ContactPoint | None:
    """A contact point by its normalized value; phones match with and without the ninth digit."""
    found = await get_contact_points(session, kind=kind, values=_address_values(kind, value))
    return _best(found, value)


async def _contact_point_and_conversation(
    session: AsyncSession, *, kind: ContactKind, value: str, channel: Channel
) -> tuple[ContactPoint | None, Conversation | None]:
    """`get_contact_point`, with the chosen contact's open conversation on `channel`, in one
    statement."""
    params = {"kind": kind, "values": _address_values(kind, value), "channel": channel}
    rows = (await session.execute(_contact_points_with_conversation_statement(), params)).all()
    contact = _best([row[0] for row in rows], value)
    if contact is None:
        return None, None
    return contact, next((row[1] for row in rows if row[0] is contact), None)


async def create_contact_point(
    session: AsyncSession, *, kind: ContactKind, value: str, infringer_id: int | None
) -> ContactPoint:
    """Insert a contact point, tolerating a concurrent insert of the same address."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await session.execute(
        insert(ContactPoint)
        .values(kind=kind, value=value, infringer_id=infringer_id)
        .on_conflict_do_nothing(index_elements=["kind", "value"])
    )
    contact = await session.scalar(
        sa.select(ContactPoint)
        .where(ContactPoint.kind == kind, ContactPoint.value == value)
        .execution_options(populate_existing=True)
    )
    assert contact is not None
    return contact


async def do_identify_sender(
    session: AsyncSession, *, kind: ContactKind, raw: str, channel: Channel | None = None
) -> Identification:
    """Find the contact, infringer and open case behind an inbound address (and, with
    `channel`, the contact's open conversation on it, in the same statement as the contact).

    An unknown address becomes a new contact without an infringer (the unmatched queue); nothing
    is dropped.
    """
    value = normalize_address(kind, raw)
    conversation: Conversation | None = None
    if channel is None:
        contact = await get_contact_point(session, kind=kind, value=value)
    else:
        contact, conversation = await _contact_point_and_conversation(
            session, kind=kind, value=value, channel=channel
        )
    matched_by = str(kind)
    if contact is None and kind is ContactKind.EMAIL:
        domain = email_domain(value)
        by_domain = (
            None
            if domain in FREE_MAIL_DOMAINS
            else await get_contact_point(session, kind=ContactKind.EMAIL_DOMAIN, value=domain)
        )
        contact = await create_contact_point(
            session,
            kind=kind,
            value=value,
            infringer_id=by_domain.infringer_id if by_domain is not None else None,
        )
        matched_by = "email_domain" if by_domain is not None else "unmatched"
    elif contact is None:
        contact = await create_contact_point(session, kind=kind, value=value, infringer_id=None)
        matched_by = "unmatched"
    if contact.infringer_id is None:
        return Identification(
            contact=contact,
            infringer=None,
            case=None,
            matched_by="unmatched",
            address=value,
            conversation=conversation,
        )
    infringer, case = await get_infringer_with_open_case(session, infringer_id=contact.infringer_id)
    return Identification(
        contact=contact,
        infringer=infringer,
        case=case,
        matched_by=matched_by,
        address=value,
        conversation=conversation,
    )


async def get_unmatched_contacts(
    session: AsyncSession, *, limit: int = 100
) -> Sequence[ContactPoint]:
    """The unmatched queue: addresses that wrote to us but belong to no known infringer."""
    query = (
        sa.select(ContactPoint)
        .where(ContactPoint.infringer_id.is_(None), ContactPoint.kind != ContactKind.EMAIL_DOMAIN)
        .order_by(ContactPoint.id)
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def do_lift_opt_out(
    session: AsyncSession, *, contact_id: int, actor: Actor, reason: str
) -> ContactPoint:
    """An analyst takes an address off the suppression list (the infringer asked to be
    contacted again, or the opt-out was a mistake); recorded on its cases' timelines."""
    contact = await session.get(ContactPoint, contact_id, with_for_update=True)
    if contact is None:
        raise NotFound(f"Contato {contact_id} não encontrado.")
    if contact.opted_out_at is None:
        raise Conflict("Este contato não está na lista de supressão.")
    if not reason.strip():
        raise ValidationFailed("Informe o motivo para liberar o contato.")
    contact.opted_out_at = None
    contact.opt_out_reason = None
    contact.opted_out_by = None
    conversations = (
        await session.scalars(
            sa.select(Conversation)
            .where(Conversation.contact_point_id == contact.id)
            .order_by(Conversation.id)
        )
    ).all()
    for conversation in conversations:
        await create_entry(
            session,
            kind=EntryKind.SYSTEM,
            actor=actor,
            case_id=conversation.case_id,
            conversation_id=conversation.id,
            summary=f"Contato {contact.value} liberado para mensagens: {reason.strip()}",
            data={"contact_id": contact.id, "opt_out_lifted": True},
        )
    # One event per address (the opt-out was one too), about its latest conversation if any.
    latest = conversations[-1] if conversations else None
    emit(
        session,
        ContactOptOutLifted(
            **about(actor=actor, conversation=latest), contact_id=contact.id, reason=reason.strip()
        ),
    )
    return contact
