"""Event-driven alerts: two durable consumers of the event stream (api/events/consumers.py).

`operations-alerts` runs inline (right after the commit that emitted the event, in that
process, so an open panel hears of a reply within a second) and in the worker: "infringer
replied" and the conditions that clear alerts. `operations-notices` runs in the worker only
(within seconds): delivery failures, opt-outs and data requests. Each event is handled once per
cursor position; a replay of the same event raises nothing new, because an alert's key is
derived from the event (the message, the contact, the event id), never from when it was handled.

Who hears "infringer replied": the analyst holding the conversation, else the case's
responsible analyst; while a conversation waits for a person (handed off, nobody holds it) the
supervisors too. A bot-held conversation of a case nobody owns raises nothing: the bot answers.

No storms: while an "infringer replied" alert of a conversation is unresolved, more inbound
messages only count on it; an analyst's reply resolves it, and the next message starts a new
cycle.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.conversations.models import Conversation, Holder
from api.events import kinds as k
from api.events.consumers import Consumer, register_consumer
from api.events.models import StoredEvent
from api.events.service import EventRecord
from api.operations import kinds as ak
from api.operations.alerts import (
    OPEN,
    RESOLVED,
    SNOOZED,
    AlertSpec,
    EmailPreferences,
    do_fold_repeat,
    do_resolve_alerts,
    do_resolve_condition,
    load_email_preferences,
    raise_alerts,
)
from api.operations.kinds import AlertSettings, get_alert_settings, kind_label
from api.operations.models import Alert

NAME = "operations-alerts"

_DEADLINE_OPEN = (CaseStatus.NOTIFICADO, CaseStatus.SEM_RESPOSTA)
_PAID = (CaseStatus.PAGO, CaseStatus.ENCERRADO, CaseStatus.DESCARTADO)


def conversation_subject(conversation_id: int) -> str:
    return f"conv:{conversation_id}"


def case_subject(case_id: int) -> str:
    return f"case:{case_id}"


async def owner_of(
    session: AsyncSession, *, case_id: int | None, conversation: Conversation | None = None
) -> int | None:
    """Who an alert about this conversation/case goes to: the analyst holding the
    conversation, else the case's responsible analyst; None: supervisors."""
    if (
        conversation is not None
        and conversation.holder is Holder.HUMAN
        and conversation.analyst_id is not None
    ):
        return conversation.analyst_id
    if case_id is None:
        return None
    return await session.scalar(sa.select(Case.assignee_id).where(Case.id == case_id))


async def _reference(session: AsyncSession, case_id: int | None) -> str:
    if case_id is None:
        return ""
    reference = await session.scalar(sa.select(Case.reference).where(Case.id == case_id))
    return f" ({reference})" if reference else ""


log = logging.getLogger(__name__)
# The intent (contract/intents.md) of a data subject's request (LGPD art. 18).
DATA_REQUEST_INTENT = "data_request"


async def _subjects_exist(session: AsyncSession, record: EventRecord) -> bool:
    """Whether the case and conversation an event names are still there. An alert refers to
    them by foreign key: an event about rows that are gone (erased, or never stored) must be
    passed over, not retried for ever, or it would hold back every event after it."""
    event = record.event
    if event.conversation_id is not None and (
        await session.scalar(
            sa.select(Conversation.id).where(Conversation.id == event.conversation_id)
        )
        is None
    ):
        return False
    return (
        event.case_id is None
        or (await session.scalar(sa.select(Case.id).where(Case.id == event.case_id))) is not None
    )


def _may_raise(record: EventRecord) -> bool:
    """False for an event its handler passes over before reading anything (so the existence
    check is not paid for it): a bot turn that read no data request."""
    event = record.event
    return not isinstance(event, k.BotTurnRead) or event.intent == DATA_REQUEST_INTENT


async def handle_event(session: AsyncSession, record: EventRecord) -> None:
    """Raise or clear the alerts one event calls for."""
    handler = _HANDLERS.get(record.kind)
    if handler is None:
        return
    if record.kind in _DEFERRED:
        if not _may_raise(record):
            return  # most bot turns read no data request: nothing to check, nothing to raise
        if not await _subjects_exist(session, record):
            # The inline kinds run right after the commit that wrote their rows; the worker's
            # kinds may come long after, so only they pay for the check.
            log.warning(
                "event %s (%s) names a case or conversation that is gone", record.id, record.kind
            )
            return
    await handler(session, record, await get_alert_settings(session))


# A pass of the consumer handles up to its batch_size events in one transaction; an initial
# e-mail sync brings a message.received per mail. Instead of three to six queries per event
# (the "e-mail ignored" alerts to resolve, the unseen "infringer replied" alert, the
# conversation, the case's owner and reference), the first one of a pass reads them for the
# message.received events ahead of it in a handful of queries (`_Lookahead`).
LOOKAHEAD = 200
_LOOKAHEAD_KEY = "operations_alerts_lookahead"


@dataclass
class _Lookahead:
    """What a pass read at once about the conversations of the message.received events ahead.

    For each conversation in `covered`, `alerts[subject]` holds every alert that the per-event
    queries would find: "e-mail ignored" not resolved, "infringer replied" open or snoozed —
    as loaded (and locked, as get_unresolved locks) at the first event, then kept current by
    this pass: the alerts are the session's objects (a resolve by another handler of the pass
    changes their state here too) and the ones this pass raises are added. Alerts are only
    raised for these kinds by this consumer (the "e-mail ignored" sweep writes in its own
    transaction, as it could before, between two per-event queries); the cursor lock keeps a
    second pass of this consumer out."""

    covered: set[int] = field(default_factory=set)
    alerts: dict[str, list[Alert]] = field(default_factory=dict)
    cases: dict[int, tuple[int | None, str | None]] = field(default_factory=dict)
    conversations: list[Conversation] = field(default_factory=list)
    preferences: EmailPreferences | None = None


async def _lookahead(session: AsyncSession, record: EventRecord) -> _Lookahead:
    """The pass's lookahead, extended from `record` on when its conversation is not covered."""
    state = session.info.get(_LOOKAHEAD_KEY)
    if not isinstance(state, _Lookahead):
        state = session.info[_LOOKAHEAD_KEY] = _Lookahead()
    event = record.event
    if event.conversation_id is None or event.conversation_id in state.covered:
        return state
    rows = (await session.execute(_ahead_statement(), {"first_id": record.id})).all()
    conversations = {event.conversation_id, *(c for c, _ in rows if c is not None)} - state.covered
    cases = {c for _, c in rows if c is not None}
    if event.case_id is not None:
        cases.add(event.case_id)
    cases -= set(state.cases)
    subjects = sorted(conversation_subject(c) for c in conversations)
    found = await session.scalars(_unresolved_alerts_statement(), {"subjects": subjects})
    for alert in found.all():
        state.alerts.setdefault(alert.subject, []).append(alert)
    # Held here, so they stay in the session's (weak) identity map: session.get(Conversation, id)
    # below asks nothing more.
    state.conversations.extend(
        await session.scalars(_conversations_statement(), {"ids": sorted(conversations)})
    )
    if cases:
        for case_id, assignee_id, reference in await session.execute(
            _cases_statement(), {"ids": sorted(cases)}
        ):
            state.cases[int(case_id)] = (assignee_id, reference)
    state.covered |= conversations
    return state


# The lookahead's statements, built once on first use (building them cost more CPU than
# running them): each call binds its values; an IN list is one expanding parameter.


@functools.cache
def _ahead_statement() -> sa.Select[int | None, int | None]:
    """The conversations and cases of the next message.received events from `first_id` on."""
    return (
        sa.select(StoredEvent.conversation_id, StoredEvent.case_id)
        .where(
            StoredEvent.id >= sa.bindparam("first_id", type_=StoredEvent.id.type),
            StoredEvent.kind == k.MessageReceived.kind,
            StoredEvent.conversation_id.is_not(None),
        )
        .order_by(StoredEvent.id)
        .limit(LOOKAHEAD)
    )


@functools.cache
def _unresolved_alerts_statement() -> sa.Select[Alert]:
    """The alerts a message.received handles, of the conversation `subjects`, locked."""
    return (
        sa.select(Alert)
        .where(
            # kind and subject lead ix_alerts_open_subject: the index is searched, not scanned.
            Alert.kind.in_((ak.EMAIL_IGNORED, ak.INFRINGER_REPLIED)),
            Alert.subject.in_(sa.bindparam("subjects", expanding=True)),
            sa.or_(
                sa.and_(Alert.kind == ak.EMAIL_IGNORED, Alert.state != RESOLVED),
                sa.and_(Alert.kind == ak.INFRINGER_REPLIED, Alert.state.in_((OPEN, SNOOZED))),
            ),
        )
        .order_by(Alert.id)
        .with_for_update()
    )


@functools.cache
def _conversations_statement() -> sa.Select[Conversation]:
    return sa.select(Conversation).where(Conversation.id.in_(sa.bindparam("ids", expanding=True)))


@functools.cache
def _cases_statement() -> sa.Select[int, int | None, str | None]:
    return sa.select(Case.id, Case.assignee_id, Case.reference).where(
        Case.id.in_(sa.bindparam("ids", expanding=True))
    )


async def _case_facts(
    session: AsyncSession, state: _Lookahead, case_id: int | None
) -> tuple[int | None, str | None]:
    """(responsible analyst, reference) of a case, from the lookahead when it read them."""
    if case_id is None:
        return None, None
    if case_id not in state.cases:
        row = (
            await session.execute(
                sa.select(Case.assignee_id, Case.reference).where(Case.id == case_id)
            )
        ).first()
        state.cases[case_id] = (row[0], row[1]) if row is not None else (None, None)
    return state.cases[case_id]


async def _on_message_received(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.MessageReceived)
    if event.conversation_id is None:
        return
    state = await _lookahead(session, record)
    subject = conversation_subject(event.conversation_id)
    known = state.alerts.get(subject, [])
    ignored = [a for a in known if a.kind == ak.EMAIL_IGNORED and a.state != RESOLVED]
    if ignored:
        await do_resolve_alerts(session, ignored, why="o infrator respondeu")
    if not settings.enabled(ak.INFRINGER_REPLIED):
        return
    # One alert while it is unseen: once acknowledged, the next message is news again.
    unseen = [a for a in known if a.kind == ak.INFRINGER_REPLIED and a.state in (OPEN, SNOOZED)]
    if unseen:
        existing = max(unseen, key=lambda a: a.id)
        if existing.cycle != f"m{event.message_id}":
            await do_fold_repeat(session, alert=existing, now=event.occurred_at)
        return
    conversation = await session.get(Conversation, event.conversation_id)
    assignee, reference = await _case_facts(session, state, event.case_id)
    recipient = (
        conversation.analyst_id
        if conversation is not None
        and conversation.holder is Holder.HUMAN
        and conversation.analyst_id is not None
        else assignee
    )  # owner_of, with the case's assignee read ahead
    waiting = conversation is not None and conversation.holder is Holder.WAITING_HUMAN
    if recipient is None and not waiting:
        return
    if state.preferences is None:
        state.preferences = await load_email_preferences(session)
    raised = await raise_alerts(
        session,
        [
            AlertSpec(
                kind=ak.INFRINGER_REPLIED,
                subject=subject,
                cycle=f"m{event.message_id}",
                title=f"{kind_label(ak.INFRINGER_REPLIED)}{f' ({reference})' if reference else ''}",
                body="Nova mensagem do infrator na conversa.",
                case_id=event.case_id,
                conversation_id=event.conversation_id,
                recipient_id=recipient,
                to_supervisors=waiting,
                detail={"message_id": event.message_id},
            )
        ],
        now=event.occurred_at,
        preferences=state.preferences,
    )
    state.alerts.setdefault(subject, []).extend(raised)


async def _on_message_sent(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.MessageSent)
    if event.conversation_id is None or event.author_kind != "analyst":
        return
    await do_resolve_condition(
        session,
        kinds=[ak.INFRINGER_REPLIED, ak.HANDOFF_FIRST_RESPONSE, ak.HANDOFF_NEXT_RESPONSE],
        subject=conversation_subject(event.conversation_id),
        why="o analista respondeu",
    )


async def _on_message_failed(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.MessageFailed)
    if not settings.enabled(ak.DELIVERY_FAILED):
        return
    conversation = (
        await session.get(Conversation, event.conversation_id)
        if event.conversation_id is not None
        else None
    )
    ref = await _reference(session, event.case_id)
    detail = f"Mensagem não entregue ({event.status}): {event.error or 'sem detalhe'}"
    await raise_alerts(
        session,
        [
            AlertSpec(
                kind=ak.DELIVERY_FAILED,
                subject=f"msg:{event.message_id}",
                cycle="1",
                title=f"{kind_label(ak.DELIVERY_FAILED)}{ref}",
                body=detail[:1000],
                case_id=event.case_id,
                conversation_id=event.conversation_id,
                recipient_id=await owner_of(
                    session, case_id=event.case_id, conversation=conversation
                ),
                detail={"message_id": event.message_id, "status": event.status},
            )
        ],
        now=event.occurred_at,
    )


async def _on_turn_read(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.BotTurnRead)
    if event.intent != DATA_REQUEST_INTENT or not settings.enabled(ak.DATA_REQUEST):
        return
    ref = await _reference(session, event.case_id)
    await raise_alerts(
        session,
        [
            AlertSpec(
                kind=ak.DATA_REQUEST,
                subject=f"msg:{event.message_id}",
                cycle="1",
                title=f"{kind_label(ak.DATA_REQUEST)}{ref}",
                body="O titular pediu acesso, origem, correção ou exclusão de dados "
                "(LGPD art. 18): responda por uma pessoa.",
                case_id=event.case_id,
                conversation_id=event.conversation_id,
                recipient_id=await owner_of(session, case_id=event.case_id),
                to_supervisors=True,
                detail={"message_id": event.message_id},
            )
        ],
        now=event.occurred_at,
    )


async def _on_opted_out(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.ContactOptedOut)
    if not settings.enabled(ak.OPT_OUT):
        return
    ref = await _reference(session, event.case_id)
    await raise_alerts(
        session,
        [
            AlertSpec(
                kind=ak.OPT_OUT,
                subject=f"contact:{event.contact_id}",
                cycle=f"e{record.id}",
                title=f"{kind_label(ak.OPT_OUT)}{ref}",
                body=f"Contato em espera: {event.reason or 'pedido do infrator'}."[:1000],
                case_id=event.case_id,
                conversation_id=event.conversation_id,
                recipient_id=await owner_of(session, case_id=event.case_id),
                to_supervisors=True,
                detail={"contact_id": event.contact_id},
            )
        ],
        now=event.occurred_at,
    )


async def _on_opt_out_lifted(
    session: AsyncSession, record: EventRecord, _settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.ContactOptOutLifted)
    await do_resolve_condition(
        session,
        kinds=[ak.OPT_OUT],
        subject=f"contact:{event.contact_id}",
        why="contato liberado para mensagens",
        now=event.occurred_at,
    )


async def _on_back_to_bot(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    if record.event.conversation_id is not None:
        await do_resolve_condition(
            session,
            kinds=[ak.HANDOFF_FIRST_RESPONSE, ak.HANDOFF_NEXT_RESPONSE],
            subject=conversation_subject(record.event.conversation_id),
            why="a conversa voltou ao bot",
        )


async def _on_payment_confirmed(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    if record.event.case_id is not None:
        await _payment_cleared(session, record.event.case_id)


async def _on_status_changed(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    event = record.event
    assert isinstance(event, k.CaseStatusChanged)
    if event.case_id is None:
        return
    if event.to_status not in _DEADLINE_OPEN:
        await do_resolve_condition(
            session,
            kinds=[ak.DEADLINE_APPROACHING, ak.DEADLINE_PASSED],
            subject=case_subject(event.case_id),
            why=f"o caso passou a {event.to_status}",
        )
    if event.to_status in _PAID:
        await _payment_cleared(session, event.case_id)


async def _on_follow_up_set(
    session: AsyncSession, record: EventRecord, settings: AlertSettings
) -> None:
    if record.event.conversation_id is not None:
        await do_resolve_condition(
            session,
            kinds=[ak.FOLLOW_UP_DUE],
            subject=conversation_subject(record.event.conversation_id),
            why="acompanhamento remarcado",
        )


async def _payment_cleared(session: AsyncSession, case_id: int) -> None:
    await do_resolve_condition(
        session,
        kinds=[ak.PAYMENT_UNCONFIRMED],
        subject=case_subject(case_id),
        why="pagamento confirmado",
    )
    await do_resolve_condition(
        session, kinds=[ak.INSTALLMENT_OVERDUE], case_id=case_id, why="pagamento confirmado"
    )


_Handler = Callable[[AsyncSession, EventRecord, AlertSettings], Awaitable[None]]
_INLINE: dict[str, _Handler] = {
    k.MessageReceived.kind: _on_message_received,
    k.MessageSent.kind: _on_message_sent,
    k.HandoffReleased.kind: _on_back_to_bot,
    k.HandoffResolved.kind: _on_back_to_bot,
    k.PaymentConfirmed.kind: _on_payment_confirmed,
    k.CaseStatusChanged.kind: _on_status_changed,
    k.FollowUpSet.kind: _on_follow_up_set,
}
_DEFERRED: dict[str, _Handler] = {
    k.MessageFailed.kind: _on_message_failed,
    k.BotTurnRead.kind: _on_turn_read,
    k.ContactOptedOut.kind: _on_opted_out,
    k.ContactOptOutLifted.kind: _on_opt_out_lifted,
}
_HANDLERS = {**_INLINE, **_DEFERRED}
NOTICES_NAME = "operations-notices"

ALERTS_CONSUMER = register_consumer(
    Consumer(name=NAME, handle=handle_event, kinds=frozenset(_INLINE), batch_size=200, inline=True)
)
NOTICES_CONSUMER = register_consumer(
    Consumer(name=NOTICES_NAME, handle=handle_event, kinds=frozenset(_DEFERRED), batch_size=200)
)
