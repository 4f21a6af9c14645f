"""The extrajudicial notice sent through the outbox to a real SMTP server (aiosmtpd): the
reviewed text, the PDF attached (read back with pypdf, accents included), our Message-ID
recorded so the reply threads into the case; bulk sends with their skip reasons, business
hours, the per-channel rate limit, WhatsApp opt-ins, and exactly once per case."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import uuid
from collections.abc import Iterator
from email.message import EmailMessage

import pypdf
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.email.composer import Firm
from api.channels.email.ingest import Outcome, do_ingest_email
from api.channels.email.sender import SmtpEmailSender
from api.config import get_settings
from api.contacts.models import ContactKind, ContactPoint
from api.conversations.models import Channel, Message
from api.db import unit_of_work, utcnow
from api.errors import NotFound, ValidationFailed
from api.events.kinds import NoticeSent
from api.handoff.service import analyst_actor
from api.operations.calendar import default_calendar
from api.outbox.models import OutboxItem
from api.outbox.worker import deliver_due
from api.outreach.models import ItemState, OutreachItem
from api.outreach.service import (
    do_cancel_batch,
    do_create_batch,
    do_record_opt_in,
    get_previews,
    run_due_outreach,
    start_notice_batch,
)
from api.outreach.views import get_batch_progress, get_batch_report
from api.templates.service import load_catalog
from api.timeline.models import EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_analyst, make_brand, make_case, make_infringer
from tests.helpers.events import capture_events, only
from tests.integration.email_servers import (  # noqa: F401  (pytest fixture)
    SmtpServer,
    make_mail,
    smtp_server_fixture,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

UTC = dt.UTC
# A Wednesday, 14:00 in São Paulo: inside business hours, no holiday. Each test takes its own
# minute so the per-minute rate limit of one test never counts another's sends.
OPEN = dt.datetime(2026, 12, 2, 17, 0, tzinfo=UTC)
SATURDAY = dt.datetime(2026, 12, 5, 15, 0, tzinfo=UTC)
FIRM = Firm(
    name="Tratativa Proteção de Marcas",
    site="https://tratativa.example",
    phone="+55 11 4000-0000",
    email_from="Tratativa Proteção de Marcas <atendimento@tratativa.example>",
)
_minute = iter(range(0, 10_000, 3))


def moment() -> dt.datetime:
    """A fresh business-hours minute for one test (14:00 to 16:00 that Wednesday)."""
    return OPEN + dt.timedelta(minutes=next(_minute) % 120)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def phone_number() -> str:
    return f"+55119{uuid.uuid4().int % 10**8:08d}"


async def ready_case(
    *,
    name: str = "João Conceição Araújo",
    emails: tuple[str, ...] | None = None,
    phones: tuple[str, ...] = (),
    status: CaseStatus = CaseStatus.APTO_NOTIFICAR,
) -> tuple[int, str]:
    """A case ready to notify (committed); (case id, its e-mail address or '')."""
    t = tag()
    address = f"loja.{t}@exemplo.com.br"
    emails = (address,) if emails is None else emails
    async with unit_of_work() as session:
        brand = await make_brand(session, legal_name="Marca Ação Ltda.", response_days=5)
        infringer = await make_infringer(session, name=name, emails=emails, phones=phones)
        case = await make_case(
            session,
            brand=brand,
            infringer=infringer,
            status=status,
            listings=(
                f"https://produto.mercadolivre.com.br/MLB-{t}",
                f"https://shopee.com.br/produto-{t}",
            ),
        )
        return case.id, emails[0] if emails else ""


_signers: list[Actor] = []


async def signer() -> Actor:
    """The analyst who sends this module's batches (created once: password hashing is slow)."""
    if not _signers:
        async with unit_of_work() as session:
            _signers.append(analyst_actor(await make_analyst(session, role=Role.ANALYST)))
    return _signers[0]


async def new_batch(
    case_ids: list[int],
    *,
    channel: Channel = Channel.EMAIL,
    now: dt.datetime,
    request_key: str | None = None,
) -> int:
    actor = await signer()
    async with unit_of_work() as session:
        batch = await do_create_batch(
            session,
            case_ids=case_ids,
            channel=channel,
            actor=actor,
            request_key=request_key,
            now=now,
        )
        return batch.id


async def report(batch_id: int) -> dict[int, tuple[ItemState, str | None]]:
    async with unit_of_work() as session:
        return {
            item.case_id: (item.state, item.reason)
            for item in await get_batch_report(session, batch_id=batch_id)
        }


async def load_case(case_id: int) -> Case:
    async with unit_of_work() as session:
        case = await session.get(Case, case_id, populate_existing=True)
        assert case is not None
        return case


def sender_for(server: SmtpServer) -> SmtpEmailSender:
    return SmtpEmailSender(
        host=server.host, port=server.port, firm=FIRM, secret="test-secret", starttls=False
    )


def mail_to(server: SmtpServer, address: str) -> EmailMessage:
    found = [m for m in server.sink.messages if address in str(m["To"])]
    assert len(found) == 1, f"{len(found)} mails to {address}"
    return found[0]


async def test_an_email_notice_carries_text_link_and_pdf_and_its_reply_threads_into_the_case(
    smtp_server: SmtpServer,
) -> None:
    now = moment()
    case_id, address = await ready_case()
    batch_id = await new_batch([case_id], now=now)
    with capture_events() as events:
        result = await run_due_outreach(now=now, batch_id=batch_id)
    assert result.processed == 1

    case = await load_case(case_id)
    assert case.status is CaseStatus.NOTIFICADO
    assert case.notice_sent_at == now
    # Five business days of the brand's policy, counted on the business calendar.
    expected_deadline = default_calendar().add_business_days(now, 5).date()
    assert case.response_deadline == expected_deadline
    assert case.response_deadline == dt.date(2026, 12, 9)
    notice = only(events, NoticeSent)
    assert isinstance(notice, NoticeSent) and notice.case_id == case_id
    assert notice.batch_id == batch_id and notice.deadline == expected_deadline

    items = await report(batch_id)
    assert items == {case_id: (ItemState.SENT, None)}
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutreachItem).where(OutreachItem.batch_id == batch_id)
        )
        assert item is not None and item.message_id is not None and item.address == address
        conversation_id, message_id = item.conversation_id, item.message_id
        entries = (
            await session.scalars(sa.select(TimelineEntry).where(TimelineEntry.case_id == case_id))
        ).all()
    summaries = " | ".join(e.summary for e in entries)
    assert "Notificação extrajudicial enviada por E-mail" in summaries
    assert "Apto a notificar → Notificado" in summaries
    assert any(e.kind is EntryKind.MESSAGE and e.message_id == message_id for e in entries)

    # Through the outbox to a real SMTP server.
    assert conversation_id is not None
    attempted = await deliver_due(
        {Channel.EMAIL: sender_for(smtp_server)}, conversation_id=conversation_id
    )
    assert attempted == 1
    mail = mail_to(smtp_server, address)
    assert "Notificação extrajudicial" in str(mail["Subject"])
    assert case.reference in str(mail["Subject"])
    body = mail.get_body(("plain",))
    assert body is not None
    text = str(body.get_content())
    assert "Prezado(a) João Conceição Araújo," in text
    assert case.brand.name in text and "Marca Ação Ltda." in text
    assert "R$ 2.000,00" in text
    assert "09/12/2026" in text
    assert f"/notificacao/{case.notice_token}" in text
    assert "MLB-" in text and "shopee.com.br" in text
    assert "resposta automática" not in text  # a notice answers nothing
    assert f"Atenciosamente,\n{(await signer()).name}\n" in text.replace("\r\n", "\n")
    attachments = list(mail.iter_attachments())
    assert len(attachments) == 1
    pdf_part = attachments[0]
    assert pdf_part.get_content_type() == "application/pdf"
    assert pdf_part.get_filename() == f"notificacao-extrajudicial-{case.reference}.pdf"
    pdf_bytes = pdf_part.get_content()
    assert isinstance(pdf_bytes, bytes) and pdf_bytes.startswith(b"%PDF")
    pdf_text = "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf_bytes)).pages)
    assert "NOTIFICAÇÃO EXTRAJUDICIAL" in pdf_text
    assert "João Conceição Araújo" in pdf_text
    assert "Marca Ação Ltda." in pdf_text
    assert case.reference in pdf_text and "09/12/2026" in pdf_text and "R$ 2.000,00" in pdf_text

    # Our Message-ID is recorded on the message (what a reply's In-Reply-To points at).
    our_id = str(mail["Message-ID"]).strip("<>")
    async with unit_of_work() as session:
        sent = await session.get(Message, message_id)
        assert sent is not None and sent.provider_id == our_id
    reply = make_mail(
        sender=address,
        subject=f"RE: {mail['Subject']}",
        body="Recebi a notificação. Os produtos são originais, tenho nota fiscal.",
        message_id=f"resposta.{tag()}@exemplo.com.br",
        headers={"In-Reply-To": f"<{our_id}>", "References": f"<{our_id}>"},
    )
    async with unit_of_work() as session:
        ingested = await do_ingest_email(session, reply)
    assert ingested.outcome is Outcome.STORED
    assert ingested.case_id == case_id
    assert ingested.conversation_id == conversation_id


async def test_a_bulk_send_reports_each_case_sent_or_skipped_with_the_reason() -> None:
    now = moment()
    sent_a, _ = await ready_case()
    opted_out, opted_out_address = await ready_case()
    no_email, _ = await ready_case(emails=(), phones=(phone_number(),))
    not_ready, _ = await ready_case(status=CaseStatus.EM_TRIAGEM)
    sent_b, _ = await ready_case()
    restricted, _ = await ready_case()
    async with unit_of_work() as session:
        restricted_case = await session.get(Case, restricted)
        assert restricted_case is not None
        restricted_case.infringer.processing_restricted_at = utcnow()
        contact = await session.scalar(
            sa.select(ContactPoint).where(ContactPoint.value == opted_out_address)
        )
        assert contact is not None
        contact.opted_out_at = utcnow()
        contact.opt_out_reason = "pediu para parar"
    selection = [sent_a, opted_out, no_email, not_ready, sent_b, restricted]

    async with unit_of_work() as session:
        previews = await get_previews(session, case_ids=selection, channel=Channel.EMAIL)
    assert [p.would_send for p in previews] == [True, False, False, False, True, False]
    assert [p.reason for p in previews] == [
        None,
        "opted_out",
        "no_address",
        "status",
        None,
        "restricted",
    ]

    batch_id = await new_batch(selection, now=now)
    result = await run_due_outreach(now=now, batch_id=batch_id)
    assert result.processed == 6
    assert await report(batch_id) == {
        sent_a: (ItemState.SENT, None),
        opted_out: (ItemState.SKIPPED, "opted_out"),
        no_email: (ItemState.SKIPPED, "no_address"),
        not_ready: (ItemState.SKIPPED, "status"),
        sent_b: (ItemState.SENT, None),
        restricted: (ItemState.SKIPPED, "restricted"),
    }
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
        skipped_detail = [
            i.detail for i in await get_batch_report(session, batch_id=batch_id) if i.detail
        ]
    assert progress is not None and progress.finished
    assert (progress.total, progress.sent, progress.skipped, progress.pending) == (6, 2, 4, 0)
    assert progress.percent == 100
    assert any("Em triagem" in d for d in skipped_detail)
    # Skipped cases lose nothing: still where they were, nothing queued for them.
    assert (await load_case(opted_out)).status is CaseStatus.APTO_NOTIFICAR
    assert (await load_case(not_ready)).status is CaseStatus.EM_TRIAGEM
    async with unit_of_work() as session:
        queued = await session.scalar(
            sa.select(sa.func.count())
            .select_from(Message)
            .where(Message.case_id.in_([opted_out, no_email, not_ready, restricted]))
        )
    assert queued == 0
    async with unit_of_work() as session:
        entry = await session.scalar(
            sa.select(TimelineEntry.summary)
            .where(TimelineEntry.case_id == opted_out, TimelineEntry.kind == EntryKind.SYSTEM)
            .order_by(TimelineEntry.id.desc())
            .limit(1)
        )
    assert entry is not None and "não enviada por E-mail" in entry and "opt-out" in entry


async def test_each_case_is_sent_once_per_batch_and_once_across_batches() -> None:
    now = moment()
    case_id, _ = await ready_case()
    # Duplicates in one selection collapse; the database refuses a second item anyway.
    first = await new_batch([case_id, case_id], now=now)
    with pytest.raises(IntegrityError):
        async with unit_of_work() as session:
            session.add(
                OutreachItem(batch_id=first, case_id=case_id, channel=Channel.EMAIL, not_before=now)
            )
    # The same request (Idempotency-Key) is the same batch.
    key = f"key-{tag()}"
    second = await new_batch([case_id], now=now, request_key=key)
    assert await new_batch([case_id], now=now, request_key=key) == second
    racing_key = f"key-{tag()}"
    racing = await asyncio.gather(
        *(new_batch([case_id], now=now, request_key=racing_key) for _ in range(3))
    )
    assert len(set(racing)) == 1
    async with unit_of_work() as session:
        await do_cancel_batch(session, batch_id=racing[0], analyst=None, now=now)

    assert (await run_due_outreach(now=now, batch_id=first)).processed == 1
    assert (await run_due_outreach(now=now, batch_id=first)).processed == 0  # replay: nothing
    assert (await run_due_outreach(now=now, batch_id=second)).processed == 1
    assert await report(first) == {case_id: (ItemState.SENT, None)}
    assert await report(second) == {case_id: (ItemState.SKIPPED, "status")}
    async with unit_of_work() as session:
        outbox_rows = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxItem)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(Message.case_id == case_id)
        )
    assert outbox_rows == 1


async def test_outside_business_hours_the_batch_waits_for_the_next_opening() -> None:
    case_id, _ = await ready_case()
    batch_id = await new_batch([case_id], now=SATURDAY)
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
    monday_opening = dt.datetime(2026, 12, 7, 12, 0, tzinfo=UTC)  # 09:00 in São Paulo
    assert progress is not None and progress.next_at == monday_opening

    result = await run_due_outreach(now=SATURDAY, batch_id=batch_id)
    assert (result.processed, result.closed, result.next_open) == (0, True, monday_opening)
    assert (await load_case(case_id)).status is CaseStatus.APTO_NOTIFICAR
    # Open on Monday, but not before the item's own time.
    result = await run_due_outreach(now=monday_opening + dt.timedelta(minutes=1), batch_id=batch_id)
    assert result.processed == 1
    assert (await load_case(case_id)).status is CaseStatus.NOTIFICADO


async def test_the_channel_rate_limit_holds_the_rest_for_the_next_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(get_settings(), "outreach_email_per_minute", 2)
    now = dt.datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    cases = [(await ready_case())[0] for _ in range(3)]
    batch_id = await new_batch(cases, now=now)
    result = await run_due_outreach(now=now, batch_id=batch_id)
    assert (result.processed, result.rate_limited) == (2, True)
    assert sorted(s for s, _ in (await report(batch_id)).values()) == [
        ItemState.PENDING,
        ItemState.SENT,
        ItemState.SENT,
    ]
    result = await run_due_outreach(now=now + dt.timedelta(seconds=30), batch_id=batch_id)
    assert (result.processed, result.rate_limited) == (0, True)
    result = await run_due_outreach(now=now + dt.timedelta(seconds=61), batch_id=batch_id)
    assert result.processed == 1
    assert {s for s, _ in (await report(batch_id)).values()} == {ItemState.SENT}


async def test_a_cancelled_batch_sends_nothing_more() -> None:
    now = moment()
    case_id, _ = await ready_case()
    batch_id = await new_batch([case_id], now=now)
    async with unit_of_work() as session:
        await do_cancel_batch(session, batch_id=batch_id, analyst=None, now=now)
    assert (await run_due_outreach(now=now, batch_id=batch_id)).processed == 0
    assert await report(batch_id) == {case_id: (ItemState.SKIPPED, "cancelled")}
    assert (await load_case(case_id)).status is CaseStatus.APTO_NOTIFICAR


@pytest.fixture
def whatsapp_sid(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    sid = "HX" + "a1" * 16
    monkeypatch.setattr(get_settings(), "template_content_sids", {"notificacao_extrajudicial": sid})
    load_catalog.cache_clear()
    yield sid
    load_catalog.cache_clear()


async def test_whatsapp_notices_go_as_the_approved_template_only_to_opted_in_phones(
    whatsapp_sid: str,
) -> None:
    now = moment()
    opted_in_phone = phone_number()
    with_opt_in, _ = await ready_case(emails=(), phones=(opted_in_phone,))
    without_opt_in, _ = await ready_case(emails=(), phones=(phone_number(),))
    async with unit_of_work() as session:
        await do_record_opt_in(
            session, phone=opted_in_phone, source="formulário do site", analyst_id=None
        )
        # Recording it twice changes nothing.
        await do_record_opt_in(
            session, phone=opted_in_phone, source="formulário do site", analyst_id=None
        )
    batch_id = await new_batch([with_opt_in, without_opt_in], channel=Channel.WHATSAPP, now=now)
    assert (await run_due_outreach(now=now, batch_id=batch_id)).processed == 2
    assert await report(batch_id) == {
        with_opt_in: (ItemState.SENT, None),
        without_opt_in: (ItemState.SKIPPED, "no_opt_in"),
    }
    case = await load_case(with_opt_in)
    async with unit_of_work() as session:
        row = await session.scalar(
            sa.select(OutboxItem)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(Message.case_id == with_opt_in)
        )
    assert row is not None and row.channel is Channel.WHATSAPP
    assert row.payload["to"] == opted_in_phone
    assert row.payload["content_sid"] == whatsapp_sid
    variables = row.payload["content_variables"]
    assert variables["3"] == case.reference
    assert variables["5"].endswith(f"/notificacao/{case.notice_token}")
    assert case.status is CaseStatus.NOTIFICADO


async def test_without_an_approved_template_whatsapp_notices_are_skipped() -> None:
    now = moment()
    phone = phone_number()
    case_id, _ = await ready_case(emails=(), phones=(phone,))
    async with unit_of_work() as session:
        await do_record_opt_in(session, phone=phone, source="conversa", analyst_id=None)
        contact = await session.scalar(
            sa.select(ContactPoint).where(
                ContactPoint.kind == ContactKind.PHONE, ContactPoint.value == phone
            )
        )
        assert contact is not None
    batch_id = await new_batch([case_id], channel=Channel.WHATSAPP, now=now)
    await run_due_outreach(now=now, batch_id=batch_id)
    assert await report(batch_id) == {case_id: (ItemState.SKIPPED, "no_template")}


async def test_two_workers_on_one_batch_send_each_case_once() -> None:
    now = moment()
    cases = [(await ready_case())[0] for _ in range(4)]
    batch_id = await new_batch(cases, now=now)
    first, second = await asyncio.gather(
        run_due_outreach(now=now, batch_id=batch_id),
        run_due_outreach(now=now, batch_id=batch_id),
    )
    assert first.processed + second.processed == 4
    assert {s for s, _ in (await report(batch_id)).values()} == {ItemState.SENT}
    async with unit_of_work() as session:
        per_case = (
            await session.execute(
                sa.select(Message.case_id, sa.func.count())
                .where(Message.case_id.in_(cases))
                .group_by(Message.case_id)
            )
        ).all()
    assert sorted(count for _, count in per_case) == [1, 1, 1, 1]


async def test_start_notice_batch_is_the_entry_point_for_other_screens() -> None:
    case_id, _ = await ready_case()
    actor = await signer()
    assert actor.analyst_id is not None
    batch_id = await start_notice_batch([case_id], "email", actor.analyst_id)
    async with unit_of_work() as session:
        progress = await get_batch_progress(session, batch_id=batch_id)
    assert progress is not None
    assert (progress.total, progress.pending, progress.actor_name) == (1, 1, actor.name)
    with pytest.raises(ValidationFailed):
        await start_notice_batch([case_id], "sms", actor.analyst_id)
    with pytest.raises(NotFound):
        await start_notice_batch([case_id, 999_999_999], "email", actor.analyst_id)
    async with unit_of_work() as session:
        await do_cancel_batch(session, batch_id=batch_id, analyst=None)


async def test_a_cloud_api_number_sends_the_notice_template_by_name_without_a_content_sid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only Twilio needs a Content SID: with Meta's Cloud API as the default number the notice
    leaves as the approved template by its name (skipping it would leave such a firm without
    WhatsApp notices)."""
    monkeypatch.setattr(get_settings(), "whatsapp_provider", "meta")
    now = moment()
    phone = phone_number()
    case_id, _ = await ready_case(emails=(), phones=(phone,))
    async with unit_of_work() as session:
        await do_record_opt_in(session, phone=phone, source="conversa", analyst_id=None)
    batch_id = await new_batch([case_id], channel=Channel.WHATSAPP, now=now)
    await run_due_outreach(now=now, batch_id=batch_id)
    assert await report(batch_id) == {case_id: (ItemState.SENT, None)}
    async with unit_of_work() as session:
        row = await session.scalar(
            sa.select(OutboxItem)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(Message.case_id == case_id)
        )
    assert row is not None and row.channel is Channel.WHATSAPP
    assert row.payload["content_sid"] == "notificacao_extrajudicial"
