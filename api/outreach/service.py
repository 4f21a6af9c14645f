"""Sending the extrajudicial notice: batches of cases, each case sent at most once per batch.

A batch (`do_create_batch`, or `start_notice_batch` for callers without a session) stores one
pending item per case, unique per (batch, case). Items are sent by `run_due_outreach` (the
worker every few seconds, the CLI inline), one transaction per item:

- only inside business hours (the business calendar); outside them items wait, their
  `not_before` at the next opening;
- within a per-channel rate limit (a sliding minute, serialised per channel on PostgreSQL);
- the item is claimed with SKIP LOCKED and the case row locked, so two workers never send the
  same item, and a case already notified by another batch is skipped (its status moved on);
- the notice goes through the outbox (e-mail: the reviewed text, the public link, the PDF
  attached; WhatsApp: the approved template, to phones that opted in), the case moves to
  NOTIFICADO through the lifecycle with the notice date and the response deadline (business
  days of the brand's `response_days`), with a timeline entry and a `notice.sent` event;
- a case that cannot be sent is skipped with a stable reason (opt-out, no address, no opt-in,
  status, a conversation of another case, no approved template) and loses nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from api.analysts.models import Analyst, Role
from api.cases.lifecycle import CaseStatus, status_label
from api.cases.models import Case
from api.cases.service import do_change_status
from api.config import get_settings
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import get_contact_point, normalize_address
from api.conversations.models import Channel, Conversation
from api.conversations.outbound import (
    Outbound,
    OutboundAttachment,
    do_queue_outbound,
    get_composer,
)
from api.conversations.service import (
    create_conversation,
    do_link_conversation,
    get_open_conversation,
)
from api.db import unit_of_work, utcnow
from api.errors import AppError, NotFound, PermissionDenied, ValidationFailed
from api.events import about, emit
from api.events.kinds import NoticeSent
from api.identifiers.errors import InvalidIdentifier
from api.operations.calendar import BusinessCalendar, load_calendar
from api.outreach.models import BatchState, ItemState, OutreachBatch, OutreachItem, WhatsAppOptIn
from api.outreach.notice import build_content, email_body, email_subject, notice_link
from api.outreach.pdf import PDF_CONTENT_TYPE, pdf_filename, render_notice_pdf
from api.storage import store_blob
from api.templates.service import do_send_template, get_template
from api.timeline.models import ActorKind, EntryKind
from api.timeline.service import Actor, create_entry

log = logging.getLogger(__name__)

# Statuses from which the notice may go: ready to notify, or reopened (the seller relisted).
NOTIFIABLE: frozenset[CaseStatus] = frozenset({CaseStatus.APTO_NOTIFICAR, CaseStatus.REABERTO})
# The approved template a business-initiated notice goes as where the channel needs one.
TEMPLATE_NAME = "notificacao_extrajudicial"
MAX_BATCH_CASES = 5000
RATE_WINDOW = dt.timedelta(minutes=1)
DEFAULT_RATE = 20
# pg_advisory_xact_lock keys: one per channel, so rate counting is serialised across workers.
_LOCK_BASE = 0x0E7E_0000

# Why a case was not sent: stable codes for the API, sentences for people.
REASONS: dict[str, str] = {
    "status": "O caso não está apto a notificar",
    "no_address": "O infrator não tem endereço cadastrado neste canal",
    "opted_out": "O contato pediu para não receber mensagens (opt-out)",
    "restricted": "O tratamento dos dados do infrator está restrito (LGPD): nenhuma mensagem sai",
    "no_opt_in": "Nenhum endereço do infrator autorizou mensagens iniciadas pela empresa (opt-in)",
    "no_template": "O modelo da notificação não está aprovado neste canal (Content SID)",
    "other_case": "O contato tem uma conversa aberta vinculada a outro caso",
    "cancelled": "Lote cancelado antes do envio",
    "refused": "Envio recusado",
    "error": "Erro inesperado; nada foi enviado",
}


class NoticeSkipped(AppError):
    """This case cannot receive the notice on this channel now (`reason`: a REASONS code)."""

    code = "notice_skipped"
    status_code = 409

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or REASONS[reason], reason=reason)
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """Where a case's notice would go on a channel."""

    contact: ContactPoint
    address: str


def parse_channel(value: str) -> Channel:
    try:
        return Channel(value.strip().lower())
    except ValueError as exc:
        raise ValidationFailed(
            f"Canal desconhecido: {value!r} (use email ou whatsapp).", field="channel"
        ) from exc


def rate_limit(channel: Channel) -> int:
    """Notices per minute allowed on a channel (OUTREACH_<CHANNEL>_PER_MINUTE)."""
    settings = get_settings()
    return int(getattr(settings, f"outreach_{channel.value}_per_minute", DEFAULT_RATE))


def needs_opt_in(channel: Channel) -> bool:
    """A channel that limits free-form text to a window after the infringer wrote (WhatsApp)
    takes a business-initiated message only as an approved template, and only to addresses
    that opted in."""
    return get_composer(channel).has_reply_window


async def actor_for(session: AsyncSession, analyst_id: int | None) -> Actor:
    if analyst_id is None:
        return Actor.system()
    analyst = await session.get(Analyst, analyst_id)
    if analyst is None:
        raise NotFound(f"Analista {analyst_id} não encontrado.")
    return Actor(ActorKind.ANALYST, analyst_id=analyst.id, name=analyst.name)


# --- selecting and batching ----------------------------------------------------------------


async def get_case_ids(
    session: AsyncSession,
    *,
    brand_id: int | None,
    status: CaseStatus | None,
    among: Sequence[int] | None = None,
) -> list[int]:
    """The cases of a selection (given ids, a brand, a status: those given combine), oldest
    first."""
    if brand_id is None and status is None and not among:
        raise ValidationFailed("Escolha os casos, a marca ou o status.")
    query = sa.select(Case.id).order_by(Case.id)
    if among:
        query = query.where(Case.id.in_(list(among)))
    if brand_id is not None:
        query = query.where(Case.brand_id == brand_id)
    if status is not None:
        query = query.where(Case.status == status)
    return list((await session.scalars(query)).all())


async def get_existing_ids(session: AsyncSession, case_ids: Sequence[int]) -> list[int]:
    return list((await session.scalars(sa.select(Case.id).where(Case.id.in_(case_ids)))).all())


def request_key(analyst_id: int | None, idempotency_key: str | None) -> str | None:
    """What a batch stores of a client's Idempotency-Key: scoped to who asked, fixed length."""
    if not idempotency_key:
        return None
    return hashlib.sha256(f"{analyst_id}:{idempotency_key}".encode()).hexdigest()


async def do_create_batch(
    session: AsyncSession,
    *,
    case_ids: Sequence[int],
    channel: Channel,
    actor: Actor,
    selection: dict[str, object] | None = None,
    request_key: str | None = None,
    now: dt.datetime | None = None,
) -> OutreachBatch:
    """Queue the notice for these cases: one batch, one item per case (duplicates collapse).
    With `request_key`, asking again returns the first batch instead of a second one."""
    if request_key:
        existing = await session.scalar(
            sa.select(OutreachBatch).where(OutreachBatch.request_key == request_key)
        )
        if existing is not None:
            return existing
    ids = list(dict.fromkeys(int(i) for i in case_ids))
    if not ids:
        raise ValidationFailed("Nenhum caso selecionado.")
    if len(ids) > MAX_BATCH_CASES:
        raise ValidationFailed(f"No máximo {MAX_BATCH_CASES} casos por lote ({len(ids)} pedidos).")
    known = set((await session.scalars(sa.select(Case.id).where(Case.id.in_(ids)))).all())
    missing = [i for i in ids if i not in known]
    if missing:
        raise NotFound(
            f"Casos não encontrados: {', '.join(str(i) for i in missing[:20])}.", missing=missing
        )
    now = now or utcnow()
    calendar = await load_calendar(session)
    not_before = calendar.next_open(now)
    batch = OutreachBatch(
        channel=channel,
        state=BatchState.QUEUED,
        analyst_id=actor.analyst_id,
        actor_name=actor.name,
        selection=dict(selection or {"case_ids": ids}),
        total=len(ids),
        request_key=request_key or None,
    )
    try:
        async with session.begin_nested():
            session.add(batch)
    except IntegrityError:
        # The same Idempotency-Key arrived twice at once: the other request made the batch.
        existing = await session.scalar(
            sa.select(OutreachBatch).where(OutreachBatch.request_key == request_key)
        )
        if request_key is None or existing is None:
            raise
        return existing
    session.add_all(
        OutreachItem(
            batch_id=batch.id,
            case_id=case_id,
            channel=channel,
            state=ItemState.PENDING,
            not_before=not_before,
        )
        for case_id in ids
    )
    await session.flush()
    return batch


async def start_notice_batch(case_ids: list[int], channel: str, actor_id: int) -> int:
    """Queue the notice for a selection of cases on `channel` ("email" or "whatsapp"), asked by
    analyst `actor_id`; the batch id (progress: api.outreach.views.get_batch_progress)."""
    async with unit_of_work() as session:
        actor = await actor_for(session, actor_id)
        batch = await do_create_batch(
            session, case_ids=case_ids, channel=parse_channel(channel), actor=actor
        )
        return batch.id


async def do_cancel_batch(
    session: AsyncSession, *, batch_id: int, analyst: Analyst | None, now: dt.datetime | None = None
) -> OutreachBatch:
    """Stop a batch: its pending items are skipped ("cancelled"); what was sent stays sent."""
    batch = await session.get(OutreachBatch, batch_id, with_for_update=True)
    if batch is None:
        raise NotFound(f"Lote {batch_id} não encontrado.")
    if (
        analyst is not None
        and batch.analyst_id not in (None, analyst.id)
        and not analyst.has_role(Role.SUPERVISOR)
    ):
        raise PermissionDenied("Só quem criou o lote ou um supervisor pode cancelá-lo.")
    if batch.state is not BatchState.QUEUED:
        return batch
    now = now or utcnow()
    await session.execute(
        sa.update(OutreachItem)
        .where(OutreachItem.batch_id == batch.id, OutreachItem.state == ItemState.PENDING)
        .values(
            state=ItemState.SKIPPED,
            reason="cancelled",
            detail=REASONS["cancelled"],
            processed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    batch.state = BatchState.CANCELLED
    batch.finished_at = now
    return batch


# --- WhatsApp opt-in -------------------------------------------------------------------------


async def do_record_opt_in(
    session: AsyncSession, *, phone: str, source: str, analyst_id: int | None
) -> WhatsAppOptIn:
    """Record that a known phone agreed to receive WhatsApp messages from us (idempotent)."""
    if not source.strip():
        raise ValidationFailed("Informe a origem do opt-in (ex.: formulário, conversa).")
    try:
        value = normalize_address(ContactKind.PHONE, phone)
    except InvalidIdentifier as exc:
        # Not a phone number at all, so no infringer's either.
        raise NotFound(f"Telefone {phone!r} inválido ou não cadastrado.") from exc
    contact = await get_contact_point(session, kind=ContactKind.PHONE, value=value)
    if contact is None or contact.infringer_id is None:
        raise NotFound(f"Telefone {value} não pertence a nenhum infrator cadastrado.")
    existing = await session.scalar(
        sa.select(WhatsAppOptIn).where(WhatsAppOptIn.contact_point_id == contact.id)
    )
    if existing is not None:
        return existing
    opt_in = WhatsAppOptIn(
        contact_point_id=contact.id, source=source.strip()[:200], analyst_id=analyst_id
    )
    session.add(opt_in)
    await session.flush()
    return opt_in


# --- checking and sending one case -----------------------------------------------------------


async def _contacts(
    session: AsyncSession, infringer_id: int, kind: ContactKind
) -> list[ContactPoint]:
    query = (
        sa.select(ContactPoint)
        .where(ContactPoint.infringer_id == infringer_id, ContactPoint.kind == kind)
        .order_by(ContactPoint.id)
    )
    return list((await session.scalars(query)).all())


async def check_notice(session: AsyncSession, *, case: Case, channel: Channel) -> Target:
    """Where the case's notice would go, or NoticeSkipped with the reason it cannot."""
    if case.status not in NOTIFIABLE:
        raise NoticeSkipped(
            "status", f"{REASONS['status']} (status atual: {status_label(case.status)})"
        )
    if case.infringer.processing_restricted_at is not None:
        raise NoticeSkipped("restricted")
    composer = get_composer(channel)
    contacts = await _contacts(session, case.infringer_id, composer.contact_kind)
    if not contacts:
        raise NoticeSkipped("no_address", f"Nenhum endereço de {composer.label} cadastrado")
    allowed = [c for c in contacts if c.opted_out_at is None]
    if not allowed:
        raise NoticeSkipped("opted_out")
    if not needs_opt_in(channel):
        return Target(allowed[0], allowed[0].value)
    opted_in = set(
        (
            await session.scalars(
                sa.select(WhatsAppOptIn.contact_point_id).where(
                    WhatsAppOptIn.contact_point_id.in_([c.id for c in allowed])
                )
            )
        ).all()
    )
    chosen = [c for c in allowed if c.id in opted_in]
    if not chosen:
        raise NoticeSkipped("no_opt_in")
    if get_template(TEMPLATE_NAME).content_sid is None and await _needs_content_sid(session):
        raise NoticeSkipped("no_template")
    return Target(chosen[0], chosen[0].value)


async def _needs_content_sid(session: AsyncSession) -> bool:
    """Only Twilio sends an approved template by its Content SID; the Cloud API (Meta,
    360dialog) sends it by name and the unofficial gateways as text. A notice opens the
    conversation, so it leaves from the default number."""
    from api.channels.numbers.models import Provider
    from api.channels.numbers.service import default_number

    return (await default_number(session)).provider is Provider.TWILIO


async def _conversation_for(
    session: AsyncSession, *, case: Case, channel: Channel, target: Target, actor: Actor
) -> Conversation:
    conversation = await get_open_conversation(
        session, channel=channel, contact_point_id=target.contact.id
    )
    if conversation is None:
        conversation = await create_conversation(
            session, contact=target.contact, channel=channel, address=target.address, case=case
        )
        await session.flush()
    if conversation.case_id is None:
        await do_link_conversation(
            session, conversation=conversation, case=case, actor=actor, how="envio da notificação"
        )
    elif conversation.case_id != case.id:
        raise NoticeSkipped("other_case")
    return conversation


async def _load_case(session: AsyncSession, case_id: int) -> Case:
    query = (
        sa.select(Case)
        .where(Case.id == case_id)
        .options(joinedload(Case.brand), joinedload(Case.infringer), selectinload(Case.listings))
        .execution_options(populate_existing=True)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Case)
    case = await session.scalar(query)
    if case is None:
        raise NotFound(f"Caso {case_id} não encontrado.")
    return case


async def do_send_notice(
    session: AsyncSession,
    *,
    case_id: int,
    channel: Channel,
    actor: Actor,
    calendar: BusinessCalendar,
    now: dt.datetime,
    batch_id: int | None = None,
) -> tuple[Conversation, int, str]:
    """Queue the notice for one case and move it to NOTIFICADO, in the caller's transaction;
    (conversation, message id, address). Raises NoticeSkipped when it cannot go."""
    case = await _load_case(session, case_id)
    target = await check_notice(session, case=case, channel=channel)
    conversation = await _conversation_for(
        session, case=case, channel=channel, target=target, actor=actor
    )
    deadline = calendar.add_business_days(now, case.brand.response_days)
    deadline_date = deadline.astimezone(calendar.tz).date()
    case.notice_sent_at = now
    case.response_deadline = deadline_date
    if not case.notice_token:
        case.notice_token = secrets.token_urlsafe(24)
    case.notice_url = notice_link(case)
    content = build_content(
        case, deadline=deadline_date, notice_date=now.astimezone(calendar.tz).date()
    )
    if not needs_opt_in(channel):
        # A letter: the reviewed text, the link and the PDF attached.
        pdf = render_notice_pdf(content)
        blob = store_blob(pdf, PDF_CONTENT_TYPE)
        outbound = Outbound(
            text=email_body(content),
            subject=email_subject(content),
            attachments=(
                OutboundAttachment(
                    storage_path=blob.path,
                    filename=pdf_filename(content),
                    content_type=PDF_CONTENT_TYPE,
                    sha256=blob.sha256,
                    size=blob.size,
                ),
            ),
            # The notice is the firm's letter, signed by whoever sent it: no automatic-answer
            # footer (it answers nothing), the reference in the signature.
            meta={
                "case_reference": case.reference,
                "recipient_name": content.recipient_name,
                "author_kind": "analyst",
                **({"author_name": actor.name} if actor.kind is ActorKind.ANALYST else {}),
                "notice": True,
            },
        )
        message = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=actor
        )
    else:
        message = await do_send_template(
            session,
            conversation=conversation,
            case=case,
            name=TEMPLATE_NAME,
            actor=actor,
            overrides={"notice_link": content.notice_link, "deadline": content.deadline},
        )
    await do_change_status(session, case=case, target=CaseStatus.NOTIFICADO, actor=actor)
    label = get_composer(channel).label
    await create_entry(
        session,
        kind=EntryKind.SYSTEM,
        actor=actor,
        case_id=case.id,
        conversation_id=conversation.id,
        message_id=message.id,
        summary=f"Notificação extrajudicial enviada por {label} para {target.address}"
        + (f" (lote #{batch_id})" if batch_id is not None else "")
        + f"; prazo de resposta: {content.deadline}"
        + ("." if needs_opt_in(channel) else "; PDF anexo."),
        data={
            "notice": True,
            "batch_id": batch_id,
            "channel": str(channel),
            "address": target.address,
            "deadline": deadline_date.isoformat(),
        },
    )
    emit(
        session,
        NoticeSent(
            **about(conversation=conversation, actor=actor),
            message_id=message.id,
            batch_id=batch_id,
            deadline=deadline_date,
        ),
    )
    return conversation, message.id, target.address


# --- running due items -----------------------------------------------------------------------


async def _serialise_channel(session: AsyncSession, channel: Channel) -> None:
    """Hold the channel's advisory lock until commit (PostgreSQL; SQLite writers are serial)."""
    if session.get_bind().dialect.name == "postgresql":
        key = _LOCK_BASE + list(Channel).index(channel)
        await session.execute(sa.select(sa.func.pg_advisory_xact_lock(key)))


async def _sent_in_window(session: AsyncSession, channel: Channel, now: dt.datetime) -> int:
    count = await session.scalar(
        sa.select(sa.func.count())
        .select_from(OutreachItem)
        .where(
            OutreachItem.channel == channel,
            OutreachItem.state == ItemState.SENT,
            OutreachItem.processed_at > now - RATE_WINDOW,
            OutreachItem.processed_at <= now,
        )
    )
    return int(count or 0)


async def _claim(
    session: AsyncSession, channel: Channel, now: dt.datetime, batch_id: int | None
) -> OutreachItem | None:
    query = (
        sa.select(OutreachItem)
        .where(
            OutreachItem.channel == channel,
            OutreachItem.state == ItemState.PENDING,
            OutreachItem.not_before <= now,
        )
        .order_by(OutreachItem.id)
        .limit(1)
        .with_for_update(skip_locked=True, of=OutreachItem)
    )
    if batch_id is not None:
        query = query.where(OutreachItem.batch_id == batch_id)
    return await session.scalar(query)


async def _finish_if_done(session: AsyncSession, batch_id: int, now: dt.datetime) -> None:
    pending = await session.scalar(
        sa.select(sa.func.count())
        .select_from(OutreachItem)
        .where(OutreachItem.batch_id == batch_id, OutreachItem.state == ItemState.PENDING)
    )
    if not pending:
        await session.execute(
            sa.update(OutreachBatch)
            .where(OutreachBatch.id == batch_id, OutreachBatch.state == BatchState.QUEUED)
            .values(state=BatchState.DONE, finished_at=now)
            .execution_options(synchronize_session=False)
        )


@dataclass(frozen=True)
class PassResult:
    processed: int
    rate_limited: bool = False
    closed: bool = False
    next_open: dt.datetime | None = None


async def _process_next(
    channel: Channel, now: dt.datetime, batch_id: int | None
) -> tuple[bool, bool]:
    """Send (or skip) one due item of `channel`: (processed one, stopped by the rate limit)."""
    async with unit_of_work() as session:
        await _serialise_channel(session, channel)
        if await _sent_in_window(session, channel, now) >= rate_limit(channel):
            return False, True
        item = await _claim(session, channel, now, batch_id)
        if item is None:
            return False, False
        batch = await session.get(OutreachBatch, item.batch_id)
        assert batch is not None
        calendar = await load_calendar(session)
        actor = Actor.system()
        try:
            actor = await actor_for(session, batch.analyst_id)
            async with session.begin_nested():
                conversation, message_id, address = await do_send_notice(
                    session,
                    case_id=item.case_id,
                    channel=channel,
                    actor=actor,
                    calendar=calendar,
                    now=now,
                    batch_id=batch.id,
                )
        except NoticeSkipped as exc:
            item.state, item.reason, item.detail = ItemState.SKIPPED, exc.reason, exc.message[:300]
        except AppError as exc:
            item.state, item.reason, item.detail = ItemState.SKIPPED, "refused", exc.message[:300]
        except Exception as exc:
            log.exception("notice of case %s (batch %s) failed", item.case_id, item.batch_id)
            item.state, item.reason = ItemState.FAILED, "error"
            item.detail = f"{REASONS['error']} ({type(exc).__name__})"
        else:
            item.state = ItemState.SENT
            item.conversation_id, item.message_id, item.address = (
                conversation.id,
                message_id,
                address,
            )
        item.processed_at = now
        if item.state is not ItemState.SENT:
            # The case's history says it was not notified, and why.
            await create_entry(
                session,
                kind=EntryKind.SYSTEM,
                actor=actor,
                case_id=item.case_id,
                summary=f"Notificação extrajudicial não enviada por {get_composer(channel).label} "
                f"(lote #{batch.id}): {item.detail}",
                data={"notice": False, "batch_id": batch.id, "reason": item.reason},
            )
        await session.flush()
        await _finish_if_done(session, item.batch_id, now)
        return True, False


async def run_due_outreach(
    *, now: dt.datetime | None = None, limit: int = 100, batch_id: int | None = None
) -> PassResult:
    """One pass: send due items (all batches, or one) inside business hours and the channels'
    rate limits; at most `limit` items. Running it again for the same moment sends nothing
    twice (items are claimed and leave PENDING in the transaction that sends them)."""
    now = now or utcnow()
    async with unit_of_work() as session:
        calendar = await load_calendar(session)
    if not calendar.is_open(now):
        return PassResult(0, closed=True, next_open=calendar.next_open(now))
    processed = 0
    rate_limited = False
    for channel in Channel:
        while processed < limit:
            done, limited = await _process_next(channel, now, batch_id)
            rate_limited |= limited
            if not done:
                break
            processed += 1
    return PassResult(processed, rate_limited=rate_limited)


@dataclass(frozen=True)
class Preview:
    """What sending now would do for one case (the dry run)."""

    case_id: int
    case_reference: str
    would_send: bool
    address: str | None = None
    reason: str | None = None
    detail: str | None = None


async def get_previews(
    session: AsyncSession, *, case_ids: Sequence[int], channel: Channel
) -> list[Preview]:
    """The dry run: per case, where the notice would go or why it would be skipped; nothing is
    written."""
    ids = list(dict.fromkeys(case_ids))
    cases = (
        await session.scalars(
            sa.select(Case)
            .where(Case.id.in_(ids))
            .options(joinedload(Case.brand), joinedload(Case.infringer))
        )
    ).all()
    by_id = {c.id: c for c in cases}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise NotFound(f"Casos não encontrados: {', '.join(str(i) for i in missing[:20])}.")
    previews: list[Preview] = []
    for case_id in ids:
        case = by_id[case_id]
        try:
            target = await check_notice(session, case=case, channel=channel)
        except NoticeSkipped as exc:
            previews.append(Preview(case.id, case.reference, False, None, exc.reason, exc.message))
        else:
            previews.append(Preview(case.id, case.reference, True, target.address))
    return previews
