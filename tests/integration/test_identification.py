import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from api.cases.lifecycle import CaseStatus
from api.contacts.models import ContactKind, ContactPoint
from api.contacts.service import do_identify_sender, get_unmatched_contacts
from tests.factories import make_case, make_infringer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("stored", "inbound"),
    [
        ("+5511987654321", "whatsapp:+5511987654321"),  # same form
        ("+5511987654321", "whatsapp:+551187654321"),  # WhatsApp drops the ninth digit
        ("+551187654321", "+5511987654321"),  # stored without, arrives with
        ("+5511987654321", "(11) 98765-4321"),  # national format
    ],
)
async def test_phone_matches_with_and_without_the_ninth_digit(
    session: AsyncSession, stored: str, inbound: str
) -> None:
    infringer = await make_infringer(session, phones=(stored,))
    case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=inbound)
    assert found.infringer is not None and found.infringer.id == infringer.id
    assert found.case is not None and found.case.id == case.id
    assert found.contact.value == stored


async def test_email_matches_by_address_case_insensitively(session: AsyncSession) -> None:
    infringer = await make_infringer(session, emails=("vendas@lojaexemplo.com.br",))
    await make_case(session, infringer=infringer)
    found = await do_identify_sender(
        session, kind=ContactKind.EMAIL, raw="Vendas@LojaExemplo.com.br"
    )
    assert found.infringer is not None and found.infringer.id == infringer.id
    assert found.matched_by == "email"


async def test_email_matches_by_company_domain_and_learns_the_address(
    session: AsyncSession,
) -> None:
    infringer = await make_infringer(session)
    session.add(
        ContactPoint(
            kind=ContactKind.EMAIL_DOMAIN, value="empresa.com.br", infringer_id=infringer.id
        )
    )
    await session.flush()
    found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw="advogado@empresa.com.br")
    assert found.matched_by == "email_domain"
    assert found.contact.infringer_id == infringer.id


async def test_unknown_senders_land_in_the_unmatched_queue_once(session: AsyncSession) -> None:
    first = await do_identify_sender(session, kind=ContactKind.PHONE, raw="whatsapp:+5548999990000")
    again = await do_identify_sender(session, kind=ContactKind.PHONE, raw="+5548999990000")
    mail = await do_identify_sender(session, kind=ContactKind.EMAIL, raw="ninguem@gmail.com")
    assert first.matched_by == "unmatched" and first.infringer is None and first.case is None
    assert again.contact.id == first.contact.id
    # The whole queue: other tests of the session leave unmatched senders in it too.
    queue = [c.value for c in await get_unmatched_contacts(session, limit=1_000_000)]
    assert queue.count("+5548999990000") == 1 and queue.count("ninguem@gmail.com") == 1
    assert mail.infringer is None


async def test_a_known_sender_brings_its_newest_open_case_in_one_statement(
    session: AsyncSession,
) -> None:
    from tests.helpers.queries import count_queries

    phone = "+5511976543210"
    infringer = await make_infringer(session, phones=(phone,))
    older = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    newer = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
    closed = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    closed.status = CaseStatus.ENCERRADO
    await session.flush()
    assert older.id < newer.id < closed.id
    infringer_id, newer_id = infringer.id, newer.id
    session.expunge_all()  # as a webhook's new session: nothing loaded yet
    with count_queries() as log:
        found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
    # The contact point, then the infringer with its newest open case (the closed one, newer
    # still, is not open).
    assert log.count == 2, log
    assert found.infringer is not None and found.infringer.id == infringer_id
    assert found.case is not None and found.case.id == newer_id


async def test_a_known_sender_without_an_open_case_is_identified_all_the_same(
    session: AsyncSession,
) -> None:
    phone = "+5511976543219"
    infringer = await make_infringer(session, phones=(phone,))
    found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
    assert found.infringer is not None and found.infringer.id == infringer.id
    assert found.case is None and found.matched_by == "phone"


async def test_with_a_channel_the_open_conversation_comes_with_the_contact(
    session: AsyncSession,
) -> None:
    from api.conversations.models import Channel
    from api.conversations.service import create_conversation
    from api.db import utcnow
    from tests.helpers.queries import count_queries

    phone = "+5511976543221"
    infringer = await make_infringer(session, phones=(phone,), emails=("loja@exemplo.com.br",))
    case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
    found = await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
    closed = await create_conversation(
        session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
    )
    closed.closed_at = utcnow()
    await session.flush()
    open_one = await create_conversation(
        session, contact=found.contact, channel=Channel.WHATSAPP, address=phone, case=case
    )
    assert open_one.id != closed.id
    open_id = open_one.id
    session.expunge_all()
    with count_queries() as log:
        # WhatsApp drops the ninth digit: the stored contact is found all the same.
        found = await do_identify_sender(
            session, kind=ContactKind.PHONE, raw="whatsapp:+551176543221", channel=Channel.WHATSAPP
        )
    assert found.conversation is not None and found.conversation.id == open_id
    assert found.address == "+551176543221"
    assert log.count == 2, log  # contact with conversation; infringer with open case
    # Another channel's conversation is not this one's; an e-mail contact has none yet.
    other = await do_identify_sender(
        session, kind=ContactKind.EMAIL, raw="loja@exemplo.com.br", channel=Channel.EMAIL
    )
    assert other.conversation is None and other.infringer is not None
    # Without a channel nothing is looked up.
    assert (
        await do_identify_sender(session, kind=ContactKind.PHONE, raw=phone)
    ).conversation is None


async def test_an_unknown_sender_with_a_channel_has_no_conversation(session: AsyncSession) -> None:
    from api.conversations.models import Channel

    found = await do_identify_sender(
        session, kind=ContactKind.PHONE, raw="+5511976543231", channel=Channel.WHATSAPP
    )
    assert found.matched_by == "unmatched" and found.conversation is None
