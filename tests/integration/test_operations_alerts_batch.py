"""The alerts consumer handles a whole pass of message.received events with a few lookups read
ahead (api/operations/consumer.py `_Lookahead`): the alerts raised, folded and resolved are the
ones the event-by-event handling gives, also when an event of the same pass changes what a
later one sees (an analyst's reply, an alert raised earlier in the pass)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from api.analysts.models import Analyst
from api.conversations.inbound import do_receive_message
from api.conversations.models import Conversation
from api.db import get_engine, unit_of_work
from api.events import about, emit
from api.events import kinds as ev
from api.operations import kinds as ak
from api.operations.alerts import AlertSpec, do_acknowledge, raise_alerts
from api.operations.consumer import conversation_subject
from api.timeline.models import ActorKind
from api.timeline.service import Actor
from tests.integration.test_operations_alerts import alerts_of, inbound, owned_whatsapp_case

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


async def test_one_pass_over_many_conversations_raises_folds_and_resolves_as_one_by_one() -> None:
    a_conv, _, a_phone, a_owner = await owned_whatsapp_case()
    b_conv, b_case, b_phone, b_owner = await owned_whatsapp_case()
    c_conv, _, c_phone, _ = await owned_whatsapp_case(owner=False)
    d_conv, _, d_phone, d_owner = await owned_whatsapp_case()
    e_conv, _, e_phone, _ = await owned_whatsapp_case()
    # Before the pass: B is "ignored" (its alert open), D's reply alert was acknowledged, E's
    # is still unseen.
    async with unit_of_work() as session:
        await raise_alerts(
            session,
            [
                AlertSpec(
                    kind=ak.EMAIL_IGNORED,
                    subject=conversation_subject(b_conv),
                    cycle="test",
                    title="ignorado",
                    case_id=b_case,
                    conversation_id=b_conv,
                    recipient_id=b_owner,
                )
            ],
        )
    async with unit_of_work() as session:
        await do_receive_message(session, inbound(d_phone, "antes"))
    async with unit_of_work() as session:
        await do_receive_message(session, inbound(e_phone, "antes"))
    [d_before] = await alerts_of(d_conv)
    [e_before] = await alerts_of(e_conv)
    async with unit_of_work() as session:
        owner = await session.get(Analyst, d_owner)
        assert owner is not None
        await do_acknowledge(session, alert_id=d_before.id, analyst=owner)

    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = get_engine().sync_engine
    # One transaction: its events are handled by one pass of the consumer, after its commit.
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        async with unit_of_work() as session:
            first = await do_receive_message(session, inbound(a_phone, "a1"))
            conversation = await session.get(Conversation, a_conv)
            assert conversation is not None
            analyst = Actor(ActorKind.ANALYST, analyst_id=a_owner, name="analista")
            emit(  # the analyst answered A between its first and second message
                session,
                ev.MessageSent(
                    **about(conversation=conversation, actor=analyst),
                    message_id=first.message.id,
                    author_kind="analyst",
                ),
            )
            for phone, text in (
                (a_phone, "a2"),
                (b_phone, "b1"),
                (c_phone, "c1"),
                (d_phone, "d1"),
                (e_phone, "e1"),
                (a_phone, "a3"),
                (d_phone, "d2"),
            ):
                await do_receive_message(session, inbound(phone, text))
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    a_first, a_second = await alerts_of(a_conv)
    assert (a_first.state, a_first.cycle) == ("resolved", f"m{first.message.id}")
    assert (a_second.state, a_second.repeats, a_second.recipient_id) == ("open", 1, a_owner)
    ignored, replied = await alerts_of(b_conv)
    assert (ignored.kind, ignored.state) == (ak.EMAIL_IGNORED, "resolved")
    assert (replied.kind, replied.state, replied.recipient_id) == (
        ak.INFRINGER_REPLIED,
        "open",
        b_owner,
    )
    assert await alerts_of(c_conv) == []  # the bot holds it and nobody owns the case
    acknowledged, fresh = await alerts_of(d_conv)
    assert (acknowledged.id, acknowledged.state) == (d_before.id, "acknowledged")
    assert (fresh.state, fresh.repeats) == ("open", 1)
    [e_after] = await alerts_of(e_conv)
    assert (e_after.id, e_after.state, e_after.repeats) == (e_before.id, "open", 1)
    # The alert lookups were read ahead in one query, not asked per event: the one lookup by a
    # single subject is the analyst's reply resolving A's alert.
    lookups = [" ".join(s.split()) for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in lookups if "alerts.subject IN" in s]) == 1
    assert len([s for s in lookups if "alerts.subject =" in s]) == 1
