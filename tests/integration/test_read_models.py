"""The read models the panel renders (no SQL in the panel): a conversation's view spans its
case's other conversations, says whether the analyst may write and when the WhatsApp window
closes; the inbox lists a queue and the brands for its filter."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.cases.views import get_case_view
from api.conversations.inbound import InboundMessage, do_receive_message
from api.conversations.models import Channel
from api.conversations.views import get_conversation_view
from api.db import utcnow
from api.handoff.inbox import get_inbox
from api.handoff.service import do_claim, do_request_handoff
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer

pytestmark = pytest.mark.integration


async def test_views_of_a_case_with_a_whatsapp_and_an_email_conversation(
    session: AsyncSession,
) -> None:
    phone = f"+55419{uuid.uuid4().int % 10**8:08d}"  # DDD 41: no other test uses it
    address = f"loja{uuid.uuid4().hex[:8]}@exemplo.com.br"
    infringer = await make_infringer(session, phones=(phone,), emails=(address,))
    case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
    whatsapp = await do_receive_message(
        session,
        InboundMessage(
            channel=Channel.WHATSAPP,
            external_id=f"SM{uuid.uuid4().hex}",
            sender=f"whatsapp:{phone}",
            text="oi",
            received_at=utcnow() - dt.timedelta(hours=1),
            raw={},
        ),
    )
    email = await do_receive_message(
        session,
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"<{uuid.uuid4().hex}@exemplo.com.br>",
            sender=address,
            text="Prezados, segue resposta.",
            received_at=utcnow(),
            raw={},
            subject="Re: Notificação",
            case_hint=case.id,
        ),
    )
    holder = await make_analyst(session)
    other = await make_analyst(session)
    supervisor = await make_analyst(session, role=Role.SUPERVISOR)
    await do_request_handoff(
        session, conversation=whatsapp.conversation, reason="pediu", actor=Actor.bot()
    )
    await do_claim(session, conversation_id=whatsapp.conversation.id, analyst=holder)

    view = await get_conversation_view(
        session, conversation_id=whatsapp.conversation.id, analyst=holder
    )
    assert view.case is not None and view.case.id == case.id
    assert view.holder_name == holder.name and view.can_write
    assert view.window is not None and view.window.open
    assert view.window.until == whatsapp.conversation.last_inbound_at + dt.timedelta(hours=24)
    by_message = {row.message.id: row for row in view.timeline if row.message is not None}
    assert by_message[whatsapp.message.id].in_this_conversation
    mail_row = by_message[email.message.id]
    assert not mail_row.in_this_conversation
    assert mail_row.message_conversation is not None
    assert mail_row.message_conversation.channel is Channel.EMAIL

    assert not (
        await get_conversation_view(
            session, conversation_id=whatsapp.conversation.id, analyst=other
        )
    ).can_write
    assert (
        await get_conversation_view(
            session, conversation_id=whatsapp.conversation.id, analyst=supervisor
        )
    ).can_write
    email_view = await get_conversation_view(
        session, conversation_id=email.conversation.id, analyst=supervisor, with_case=False
    )
    assert email_view.window is None and email_view.case is None
    assert not email_view.can_write  # the bot holds it

    held = await get_inbox(session, analyst=holder, state="mine", channel=Channel.WHATSAPP)
    assert [item.conversation.id for item in held.items] == [whatsapp.conversation.id]
    assert case.brand_id in {brand.id for brand in held.brands}
    rows_only = await get_inbox(session, analyst=holder, state="mine", with_brands=False)
    assert rows_only.brands == ()

    case_view = await get_case_view(session, case_id=case.id)
    assert {c.id for c in case_view.conversations} == {
        whatsapp.conversation.id,
        email.conversation.id,
    }
    assert CaseStatus.EM_NEGOCIACAO in case_view.moves
    assert case_view.entries and len(case_view.entries) <= 100
