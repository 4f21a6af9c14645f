"""Safety of the rules engine: exactly once under replay (the real durable consumer), loops
stopped at the depth limit, send limits, scheduled actions cancelled by an edit or a disable,
and validation of what a rule names."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from api.automations.consumer import CONSUMER
from api.automations.due import do_run_due_rules
from api.automations.engine import MAX_DEPTH, MAX_SENDS_PER_CASE_PER_DAY
from api.automations.models import AutomationExecution, AutomationRule, ScheduledAction
from api.automations.service import (
    RuleInvalid,
    create_rule,
    do_set_enabled,
    do_update_rule,
    parse_spec,
)
from api.cases.lifecycle import CaseStatus
from api.cases.service import do_change_status
from api.db import unit_of_work
from api.events.consumers import drain
from api.events.models import EventConsumer
from api.handoff.service import analyst_actor, do_add_note
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case
from tests.integration.test_automations_defaults import (
    at,
    email_case,
    feed_events,
    last_event_id,
    ledger,
    outbound_texts,
    park_others,
    sent_email,
    timeline,
)

pytestmark = pytest.mark.integration


async def no_rules(session: AsyncSession) -> None:
    await park_others(session)
    await session.execute(sa.update(AutomationRule).values(enabled=False))


def ping_pong(name: str, on: CaseStatus, to: CaseStatus, *, opt_in: bool = True) -> dict:
    return {
        "name": name,
        "trigger": {"type": "event", "event": "case.status_changed"},
        "conditions": {"to_statuses": [str(on)]},
        "actions": [{"type": "move_status", "to": str(to), "reason": "teste de laço"}],
        "allow_rule_events": opt_in,
    }


# Replay through the real consumer --------------------------------------------------------------


@pytest.mark.usefixtures("database_url")
async def test_the_same_events_handled_twice_fire_once() -> None:
    """The consumer's cursor is moved back over events it already handled (what a crash
    between the actions and the cursor's commit would look like if they were not one
    transaction): the ledger keeps the second pass from acting."""
    await drain(CONSUMER)  # the cursor exists and is at the head
    async with unit_of_work() as session:
        case, conversation = await email_case(session, status=CaseStatus.EM_NEGOCIACAO)
        analyst = await make_analyst(session)
        case.agreed_amount, case.agreed_installments = Decimal("1200.00"), 1
        await do_change_status(
            session, case=case, target=CaseStatus.ACORDO_PROPOSTO, actor=Actor.bot()
        )
        case_id, conversation_id = case.id, conversation.id
    async with unit_of_work() as session:
        cursor = await session.get(EventConsumer, CONSUMER.name)
        assert cursor is not None
        before = (cursor.last_tx_id, cursor.last_event_id)
        case = await session.get(type(case), case_id)
        assert case is not None
        await do_change_status(
            session, case=case, target=CaseStatus.ACORDO_ASSINADO, actor=analyst_actor(analyst)
        )
    await drain(CONSUMER)
    await drain(CONSUMER)
    async with unit_of_work() as session:
        cursor = await session.get(EventConsumer, CONSUMER.name)
        assert cursor is not None
        cursor.last_tx_id, cursor.last_event_id = before
    await drain(CONSUMER)
    async with unit_of_work() as session:
        executions = await ledger(session, case_id)
        texts = await outbound_texts(session, conversation_id)
    assert [(e.trigger_key.split(":")[0], e.state) for e in executions] == [("event", "done")]
    assert len(texts) == 1 and "R$ 1.200,00" in texts[0]


# Loops ---------------------------------------------------------------------------------------


async def test_two_rules_triggering_each_other_stop_at_the_depth_limit(
    session: AsyncSession,
) -> None:
    await no_rules(session)
    await create_rule(
        session,
        spec=parse_spec(ping_pong("Ping", CaseStatus.EM_CONTESTACAO, CaseStatus.EM_NEGOCIACAO)),
        analyst=None,
    )
    await create_rule(
        session,
        spec=parse_spec(ping_pong("Pong", CaseStatus.EM_NEGOCIACAO, CaseStatus.EM_CONTESTACAO)),
        analyst=None,
    )
    case = await make_case(session, status=CaseStatus.EM_NEGOCIACAO)
    analyst = await make_analyst(session)
    start = await last_event_id(session)
    await do_change_status(
        session, case=case, target=CaseStatus.EM_CONTESTACAO, actor=analyst_actor(analyst)
    )
    await feed_events(session, case.id, start)

    executions = await ledger(session, case.id)
    done = [e for e in executions if e.state == "done"]
    assert [e.depth for e in done] == list(range(MAX_DEPTH + 1))
    [stopped] = [e for e in executions if e.state == "skipped"]
    assert stopped.depth == MAX_DEPTH + 1
    assert any("automações encadeadas" in e.summary for e in await timeline(session, case.id))
    # Four moves by rules after the analyst's one: Ping, Pong, Ping, Pong.
    assert case.status is CaseStatus.EM_CONTESTACAO


async def test_rule_caused_events_trigger_nothing_unless_the_rule_opts_in(
    session: AsyncSession,
) -> None:
    await no_rules(session)
    for spec in (
        ping_pong("Ping", CaseStatus.EM_CONTESTACAO, CaseStatus.EM_NEGOCIACAO, opt_in=False),
        ping_pong("Pong", CaseStatus.EM_NEGOCIACAO, CaseStatus.EM_CONTESTACAO, opt_in=False),
    ):
        await create_rule(session, spec=parse_spec(spec), analyst=None)
    case = await make_case(session, status=CaseStatus.EM_NEGOCIACAO)
    analyst = await make_analyst(session)
    start = await last_event_id(session)
    await do_change_status(
        session, case=case, target=CaseStatus.EM_CONTESTACAO, actor=analyst_actor(analyst)
    )
    await feed_events(session, case.id, start)
    assert [e.depth for e in await ledger(session, case.id)] == [0]
    assert case.status is CaseStatus.EM_NEGOCIACAO


# Send limits ---------------------------------------------------------------------------------


async def test_per_case_send_limit(session: AsyncSession) -> None:
    await no_rules(session)
    await create_rule(
        session,
        spec=parse_spec(
            {
                "name": "Responder nota",
                "trigger": {"type": "event", "event": "note.added"},
                "conditions": {"actor_kinds": ["analyst"]},
                "actions": [{"type": "send_template", "template": "primeiro_contato"}],
            }
        ),
        analyst=None,
    )
    case, conversation = await email_case(session)
    analyst = await make_analyst(session)
    start = await last_event_id(session)
    for n in range(MAX_SENDS_PER_CASE_PER_DAY + 2):
        await do_add_note(session, analyst=analyst, text=f"nota {n}", case=case)
    await feed_events(session, case.id, start)
    assert len(await outbound_texts(session, conversation.id)) == MAX_SENDS_PER_CASE_PER_DAY
    states = [e.state for e in await ledger(session, case.id)]
    assert states == ["done"] * MAX_SENDS_PER_CASE_PER_DAY + ["skipped"] * 2
    skipped = (await ledger(session, case.id))[-1]
    assert "limite de 3 envios automáticos por caso" in skipped.summary


# Scheduled actions ---------------------------------------------------------------------------


def _delayed_reminder() -> dict:
    return {
        "name": "Lembrete adiado",
        "trigger": {"type": "time", "anchor": "unanswered", "days": 1},
        "conditions": {"channels": ["email"]},
        "actions": [
            {"type": "add_note", "text": "Sem resposta há 1 dia útil."},
            {"type": "send_template", "template": "lembrete_email", "delay_days": 2},
        ],
    }


async def test_a_delayed_action_runs_once_when_due(session: AsyncSession) -> None:
    await no_rules(session)
    await create_rule(session, spec=parse_spec(_delayed_reminder()), analyst=None)
    case, conversation = await email_case(session)
    await sent_email(session, conversation, at(2026, 12, 7, 10, 0), "Segue.")  # Monday
    assert await do_run_due_rules(session, now=at(2026, 12, 8, 10, 0)) == 2
    [scheduled] = (await session.scalars(sa.select(ScheduledAction))).all()
    assert scheduled.state == "pending"
    assert scheduled.due_at == at(2026, 12, 10, 10, 0)
    assert await do_run_due_rules(session, now=at(2026, 12, 10, 9, 59)) == 0
    assert await do_run_due_rules(session, now=at(2026, 12, 10, 10, 0)) == 1
    assert await do_run_due_rules(session, now=at(2026, 12, 10, 10, 0)) == 0
    assert scheduled.state == "done"
    texts = await outbound_texts(session, conversation.id)
    assert len(texts) == 2 and "ainda não recebemos" in texts[1]
    assert any("(agendada)" in e.summary for e in await timeline(session, case.id))


@pytest.mark.parametrize("change", ["disable", "edit"])
async def test_disabling_or_editing_a_rule_cancels_what_it_scheduled(
    session: AsyncSession, change: str
) -> None:
    await no_rules(session)
    rule = await create_rule(session, spec=parse_spec(_delayed_reminder()), analyst=None)
    _case, conversation = await email_case(session)
    await sent_email(session, conversation, at(2026, 12, 7, 10, 0), "Segue.")
    assert await do_run_due_rules(session, now=at(2026, 12, 8, 10, 0)) == 2
    if change == "disable":
        await do_set_enabled(session, rule=rule, enabled=False, analyst=None)
    else:
        spec = _delayed_reminder() | {"description": "editada"}
        await do_update_rule(session, rule=rule, spec=parse_spec(spec), analyst=None)
        assert rule.version == 2
    [scheduled] = (await session.scalars(sa.select(ScheduledAction))).all()
    assert scheduled.state == "cancelled"
    assert await do_run_due_rules(session, now=at(2026, 12, 10, 10, 0)) == 0
    assert len(await outbound_texts(session, conversation.id)) == 1


# Validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"actions": [{"type": "send_template", "template": "nao_existe"}]},
            "Modelo de mensagem desconhecido: 'nao_existe'",
        ),
        (
            {
                "actions": [
                    {"type": "send_template", "template": "lembrete_email", "channel": "whatsapp"}
                ]
            },
            "não serve para o canal whatsapp",
        ),
        (
            {
                "conditions": {"statuses": ["NOTIFICADO"]},
                "actions": [{"type": "move_status", "to": "EM_NEGOCIACAO"}],
            },
            "Transição de status não permitida: Notificado → Em negociação",
        ),
        (
            {"actions": [{"type": "move_status", "to": "ENCERRADO", "reason": "x"}]},
            "não pode mover o caso para Encerrado",
        ),
        (
            {"actions": [{"type": "move_status", "to": "PAGO"}]},
            "não pode mover o caso para Pago",
        ),
        ({"trigger": {"type": "event", "event": "nada.aconteceu"}}, "Evento desconhecido"),
        (
            {"actions": [{"type": "raise_alert", "kind": "inventado"}]},
            "Tipo de alerta desconhecido",
        ),
        ({"actions": [{"type": "assign", "analyst_id": 999999}]}, "Analista 999999 não existe"),
    ],
)
async def test_a_rule_naming_what_cannot_work_is_refused(
    session: AsyncSession, change: dict, message: str
) -> None:
    spec = {
        "name": "Inválida",
        "trigger": {"type": "event", "event": "message.received"},
        "actions": [{"type": "add_note", "text": "x"}],
    } | change
    with pytest.raises(RuleInvalid) as refused:
        await create_rule(session, spec=parse_spec(spec), analyst=None)
    assert message in refused.value.message
    assert refused.value.status_code == 422
    assert (
        await session.scalar(
            sa.select(sa.func.count())
            .select_from(AutomationRule)
            .where(AutomationRule.name == "Inválida")
        )
        == 0
    )


async def test_payment_confirmation_may_record_pago(session: AsyncSession) -> None:
    rule = await create_rule(
        session,
        spec=parse_spec(
            {
                "name": "Conciliação",
                "trigger": {"type": "event", "event": "payment.confirmed"},
                "actions": [{"type": "move_status", "to": "PAGO"}],
            }
        ),
        analyst=None,
    )
    assert rule.id is not None


def test_malformed_rules_get_one_clear_message() -> None:
    with pytest.raises(RuleInvalid) as refused:
        parse_spec(
            {
                "name": "x",
                "trigger": {"type": "time", "anchor": "unanswered", "days": -1},
                "actions": [{"type": "add_note", "text": "x"}],
            }
        )
    assert refused.value.message.startswith("Regra inválida em trigger.time.days")


async def test_nothing_fires_twice_for_one_moment_across_all_defaults(
    session: AsyncSession,
) -> None:
    """Every default enabled, a mix of due subjects: a second pass for the same moment takes
    no action and writes no ledger row."""
    await park_others(session)
    case, conversation = await email_case(session, status=CaseStatus.NOTIFICADO)
    case.notice_sent_at = at(2026, 11, 20, 10, 0).astimezone(dt.UTC)
    case.response_deadline = dt.date(2026, 12, 4)
    await sent_email(session, conversation, at(2026, 11, 20, 10, 0), "Notificação.")
    moment = at(2026, 12, 8, 10, 0)
    assert await do_run_due_rules(session, now=moment) > 0
    count = await session.scalar(sa.select(sa.func.count()).select_from(AutomationExecution))
    assert await do_run_due_rules(session, now=moment) == 0
    assert (
        await session.scalar(sa.select(sa.func.count()).select_from(AutomationExecution)) == count
    )


@pytest.mark.usefixtures("database_url")
async def test_the_worker_pass_fires_once_across_passes_and_commits() -> None:
    """run_due_rules reads pages and fires in short transactions of its own: two passes for
    the same moment (as two workers or a re-run would) leave one reminder."""
    from api.automations.due import run_due_rules

    async with unit_of_work() as session:
        case, conversation = await email_case(session)
        await sent_email(session, conversation, at(2026, 12, 22, 10, 0), "Segue a notificação.")
        case_id, conversation_id = case.id, conversation.id
    moment = at(2026, 12, 28, 10, 0)
    assert await run_due_rules(moment) >= 2
    await run_due_rules(moment)
    async with unit_of_work() as session:
        executions = await ledger(session, case_id)
        texts = await outbound_texts(session, conversation_id)
    assert [(e.subject, e.state) for e in executions] == [
        (f"conversation:{conversation_id}", "done")
    ]
    assert len(texts) == 2
