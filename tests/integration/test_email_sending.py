"""Replies by SMTP through the outbox (aiosmtpd as the server): threading both ways, one formal
reply per inbound mail, retries on 4xx, permanent failure on 5xx, attachments; follow-ups."""

from __future__ import annotations

import datetime as dt
import uuid
from email.message import EmailMessage

import pytest
import sqlalchemy as sa

from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.email.composer import (
    Firm,
    base_subject,
    compose_subject,
    email_reply_outbound,
)
from api.channels.email.ingest import Outcome, do_ingest_email
from api.channels.email.sender import SmtpEmailSender
from api.config import get_settings
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.conversations.outbound import OutboundAttachment, do_queue_outbound
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.errors import ChannelDeliveryError
from api.followups.service import do_set_follow_up, get_due_follow_ups, get_ignored_conversations
from api.outbox.models import OutboxItem, OutboxState
from api.outbox.senders import Envelope
from api.outbox.worker import deliver_due
from api.storage import store_blob
from api.timeline.models import ActorKind, EntryKind, TimelineEntry
from api.timeline.service import Actor
from tests.factories import make_case, make_infringer
from tests.integration.email_servers import (  # noqa: F401  (pytest fixture)
    SmtpServer,
    free_port,
    load_eml,
    make_mail,
    personalize,
    smtp_server_fixture,
    tagged_address,
    tagged_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

FIRM = Firm(
    name="Tratativa Proteção de Marcas",
    site="https://tratativa.example",
    phone="+55 11 4000-0000",
    email_from="Tratativa Proteção de Marcas <atendimento@tratativa.example>",
)


def tag() -> str:
    return uuid.uuid4().hex[:10]


def sender_for(server: SmtpServer) -> SmtpEmailSender:
    return SmtpEmailSender(
        host=server.host, port=server.port, firm=FIRM, secret="test-secret", starttls=False
    )


def plain_text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def delivered_to(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [m for m in server.sink.messages if address in str(m["To"])]


async def email_conversation(address: str, *, status: CaseStatus = CaseStatus.NOTIFICADO) -> int:
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="João Silva")
        case = await make_case(session, infringer=infringer, status=status)
        found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw=address)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.EMAIL, address=address, case=case
        )
        return conversation.id


async def queue_reply(
    conversation_id: int,
    texts: list[str],
    *,
    author: AuthorKind = AuthorKind.BOT,
    reply_to: int | None = None,
    **kwargs: object,
) -> int:
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        outbound = await email_reply_outbound(
            session,
            conversation=conversation,
            texts=texts,
            author=author,
            reply_to_message_id=reply_to,
            **kwargs,  # type: ignore[arg-type]
        )
        actor = Actor.bot() if author is AuthorKind.BOT else Actor(ActorKind.ANALYST, name="Ana")
        message = await do_queue_outbound(
            session, conversation=conversation, outbound=outbound, actor=actor
        )
        return message.id


async def get_message(message_id: int) -> Message:
    async with unit_of_work() as session:
        message = await session.get(Message, message_id)
        assert message is not None
        return message


async def test_our_reply_threads_into_their_client_and_their_answer_threads_back(
    smtp_server: SmtpServer,
) -> None:
    t = tag()
    address = tagged_address("joao.silva.loja@gmail.com", t)
    conversation_id = await email_conversation(address)
    first_id = tagged_id("tt.41.7f3a9c2e51d04b1a8c7e@tratativa.example", t)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        session.add(
            Message(
                conversation_id=conversation.id,
                case_id=conversation.case_id,
                direction=Direction.OUTBOUND,
                channel=Channel.EMAIL,
                author_kind=AuthorKind.SYSTEM,
                text="Notificação",
                subject="Notificação extrajudicial",
                provider_id=first_id,
                delivery_status=DeliveryStatus.SENT,
            )
        )
    # Their Gmail reply to our notice.
    theirs = personalize(load_eml("gmail_reply_pt.eml"), t)
    async with unit_of_work() as session:
        received = await do_ingest_email(session, theirs)
    assert received.outcome is Outcome.STORED and received.conversation_id == conversation_id
    their_id = tagged_id("CAH8yC8k3QeXk2=vJp1LrT5mZ9w@mail.gmail.com", t)

    # One turn, two bot messages: one e-mail.
    reply_id = await queue_reply(
        conversation_id,
        [
            "Agradecemos o retorno e a remoção dos anúncios.",
            "O pagamento pode ser parcelado conforme a política da marca.",
        ],
        reply_to=received.message_id,
    )
    assert await deliver_due({Channel.EMAIL: sender_for(smtp_server)}) >= 1
    [mail] = delivered_to(smtp_server, address)
    reply = await get_message(reply_id)
    async with unit_of_work() as session:
        case_id, case_reference = (
            await session.execute(
                sa.select(Case.id, Case.reference)
                .join(Conversation, Conversation.case_id == Case.id)
                .where(Conversation.id == conversation_id)
            )
        ).one()

    assert reply.delivery_status is DeliveryStatus.SENT
    assert mail["Message-ID"] == f"<{reply.provider_id}>"
    assert str(reply.provider_id).endswith("@tratativa.example")
    assert mail["In-Reply-To"] == f"<{their_id}>"
    assert mail["References"].split() == [f"<{first_id}>", f"<{their_id}>"]
    assert mail["Subject"] == f"Re: Notificação extrajudicial [{case_reference}]"
    assert mail["Auto-Submitted"] == "auto-replied"
    text = plain_text(mail)
    assert text.startswith("Prezado(a) João Silva,\n\nAgradecemos o retorno")
    assert "O pagamento pode ser parcelado" in text
    assert f"Referência do caso: {case_reference}" in text
    assert "> Já retirei os anúncios do Mercado Livre" in text
    assert smtp_server.sink.envelopes[-1] == ("atendimento@tratativa.example", [address])

    # Their next mail answers ours from another address: only threading can place it.
    answer = make_mail(
        sender=f"contador-{t}@escritorio.com.br",
        subject=f"Re: Notificação extrajudicial [{case_reference}]",
        body="Sou o contador do João; seguem os dados.",
        message_id=f"answer-{t}@escritorio.com.br",
        headers={
            "In-Reply-To": mail["Message-ID"],
            "References": mail["References"] + " " + mail["Message-ID"],
        },
    )
    async with unit_of_work() as session:
        threaded = await do_ingest_email(session, answer)
    assert threaded.match is not None and threaded.match.rule == "thread"
    assert threaded.case_id == case_id


async def test_analyst_mail_is_not_automatic_and_carries_attachments(
    smtp_server: SmtpServer,
) -> None:
    t = tag()
    address = f"maria-{t}@casadamaria.com.br"
    conversation_id = await email_conversation(address)
    blob = store_blob(
        b"%PDF-1.4\n% termo de acordo " + t.encode() + b"\n%%EOF\n", "application/pdf"
    )
    message_id = await queue_reply(
        conversation_id,
        ["Segue o termo de acordo para assinatura."],
        author=AuthorKind.ANALYST,
        author_name="Ana Analista",
        attachments=[OutboundAttachment(blob.path, "termo-de-acordo.pdf", "application/pdf")],
        cc=[f"advogada-{t}@mendes.adv.br"],
    )
    await deliver_due({Channel.EMAIL: sender_for(smtp_server)})
    [mail] = delivered_to(smtp_server, address)
    assert mail["Auto-Submitted"] is None
    assert mail["Cc"] == f"advogada-{t}@mendes.adv.br"
    assert mail["Subject"].startswith("Atendimento Tratativa") or "[INF-" in mail["Subject"]
    text = plain_text(mail)
    assert "Atenciosamente,\nAna Analista\nTratativa Proteção de Marcas" in text
    assert "resposta automática" not in text
    [attachment] = list(mail.iter_attachments())
    assert attachment.get_filename() == "termo-de-acordo.pdf"
    assert attachment.get_content() == b"%PDF-1.4\n% termo de acordo " + t.encode() + b"\n%%EOF\n"
    assert smtp_server.sink.envelopes[-1][1] == [address, f"advogada-{t}@mendes.adv.br"]
    assert (await get_message(message_id)).delivery_status is DeliveryStatus.SENT


async def test_a_temporary_smtp_failure_is_retried_then_sent(smtp_server: SmtpServer) -> None:
    address = f"retry-{tag()}@loja.com.br"
    conversation_id = await email_conversation(address)
    message_id = await queue_reply(conversation_id, ["Recebemos sua mensagem."])
    smtp_server.sink.script.append("451 4.3.0 Tente novamente mais tarde")
    sender = sender_for(smtp_server)

    await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id)
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
        )
        assert item is not None
        assert (item.state, item.attempts) == (OutboxState.PENDING, 1)
        assert item.last_error is not None and "SMTP 451 (temporário)" in item.last_error
        item.next_attempt_at = utcnow() - dt.timedelta(seconds=1)  # the backoff has passed
    assert delivered_to(smtp_server, address) == []

    await deliver_due({Channel.EMAIL: sender}, conversation_id=conversation_id)
    [mail] = delivered_to(smtp_server, address)
    message = await get_message(message_id)
    assert message.delivery_status is DeliveryStatus.SENT
    assert mail["Message-ID"] == f"<{message.provider_id}>"
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
        )
        assert item is not None and (item.state, item.attempts) == (OutboxState.DONE, 2)


async def test_a_permanent_smtp_failure_fails_the_message_on_the_timeline(
    smtp_server: SmtpServer,
) -> None:
    address = f"inexistente-{tag()}@loja.com.br"
    conversation_id = await email_conversation(address)
    message_id = await queue_reply(conversation_id, ["Recebemos sua mensagem."])
    smtp_server.sink.script.append("550 5.1.1 Caixa postal inexistente")

    # Only this conversation's row: the scripted 550 must meet this mail, not another test's.
    await deliver_due({Channel.EMAIL: sender_for(smtp_server)}, conversation_id=conversation_id)
    message = await get_message(message_id)
    assert message.delivery_status is DeliveryStatus.FAILED
    assert message.delivery_error is not None
    assert message.delivery_error.startswith("SMTP 550 (permanente)")
    async with unit_of_work() as session:
        item = await session.scalar(
            sa.select(OutboxItem).where(OutboxItem.message_id == message_id)
        )
        assert item is not None and (item.state, item.attempts) == (OutboxState.FAILED, 1)
        entry = await session.scalar(
            sa.select(TimelineEntry).where(
                TimelineEntry.message_id == message_id, TimelineEntry.kind == EntryKind.DELIVERY
            )
        )
    assert entry is not None and "erro permanente" in entry.summary
    assert delivered_to(smtp_server, address) == []


async def test_an_unreachable_server_is_a_retryable_error() -> None:
    sender = SmtpEmailSender(
        host="127.0.0.1", port=free_port(), firm=FIRM, secret="s", starttls=False, timeout=3
    )
    envelope = Envelope(
        message_id=1, conversation_id=1, channel=Channel.EMAIL, to="a@b.com.br", text="oi"
    )
    with pytest.raises(ChannelDeliveryError) as caught:
        await sender.send(envelope)
    assert caught.value.retryable


async def test_the_message_id_is_stable_across_retries(smtp_server: SmtpServer) -> None:
    sender = sender_for(smtp_server)
    envelope = Envelope(
        message_id=42, conversation_id=7, channel=Channel.EMAIL, to="x@loja.com.br", text="oi"
    )
    first = await sender.send(envelope)
    second = await sender.send(envelope)
    assert first.provider_id == second.provider_id
    assert first.provider_id.startswith("tt.42.") and first.provider_id.endswith(
        "@tratativa.example"
    )
    bare = smtp_server.sink.messages[-1]
    assert bare["Auto-Submitted"] == "auto-generated"  # automatic, but answers nothing
    assert bare["Subject"] == "Atendimento Tratativa Proteção de Marcas"


def test_the_subject_keeps_one_re_and_one_reference() -> None:
    ref = "INF-2026-000123"
    assert base_subject("RES: RE: Fwd: Notificação [INF-2026-000123]") == "Notificação"
    assert compose_subject("RES: Notificação extrajudicial", ref, reply=True, default="x") == (
        "Re: Notificação extrajudicial [INF-2026-000123]"
    )
    assert compose_subject("Re: Notificação [INF-2026-000123]", ref, reply=True, default="x") == (
        "Re: Notificação [INF-2026-000123]"
    )
    assert compose_subject(f"Resposta ao caso {ref}", ref, reply=True, default="x") == (
        f"Re: Resposta ao caso {ref}"
    )
    assert compose_subject(None, ref, reply=False, default="Atendimento") == (
        "Atendimento [INF-2026-000123]"
    )


async def test_ignored_email_conversations_and_follow_ups() -> None:
    t = tag()
    now = utcnow()
    ignored = await email_conversation(f"ignorou-{t}@loja.com.br")
    auto_only = await email_conversation(f"ferias-{t}@loja.com.br")
    answered = await email_conversation(f"respondeu-{t}@loja.com.br")
    recent = await email_conversation(f"recente-{t}@loja.com.br")

    async def add(
        conversation_id: int, direction: Direction, days_ago: float, **meta: object
    ) -> None:
        async with unit_of_work() as session:
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            session.add(
                Message(
                    conversation_id=conversation_id,
                    case_id=conversation.case_id,
                    direction=direction,
                    channel=Channel.EMAIL,
                    author_kind=AuthorKind.BOT
                    if direction is Direction.OUTBOUND
                    else AuthorKind.INFRINGER,
                    text="x",
                    delivery_status=DeliveryStatus.SENT
                    if direction is Direction.OUTBOUND
                    else DeliveryStatus.RECEIVED,
                    created_at=now - dt.timedelta(days=days_ago),
                    meta=dict(meta) or None,
                )
            )

    for conversation_id in (ignored, auto_only, answered):
        await add(conversation_id, Direction.OUTBOUND, 10)
    await add(auto_only, Direction.INBOUND, 9, answerable=False)
    await add(answered, Direction.INBOUND, 8, answerable=True)
    await add(recent, Direction.OUTBOUND, 2)

    async with unit_of_work() as session:
        found = await get_ignored_conversations(
            session, channel=Channel.EMAIL, days=7, now=now, limit=10_000
        )
    by_id = {f.conversation_id: f for f in found}
    assert ignored in by_id and auto_only in by_id
    assert answered not in by_id and recent not in by_id
    assert by_id[ignored].days_waiting == 10 and by_id[ignored].last_reply_at is None

    async with unit_of_work() as session:
        conversation = await session.get(Conversation, ignored)
        assert conversation is not None
        await do_set_follow_up(
            session,
            conversation=conversation,
            when=now - dt.timedelta(minutes=1),
            actor=Actor.system(),
            note="ligar para o vendedor",
        )
    async with unit_of_work() as session:
        due = await get_due_follow_ups(session, channel=Channel.EMAIL, now=now, limit=10_000)
        entry = await session.scalar(
            sa.select(TimelineEntry.summary).where(
                TimelineEntry.conversation_id == ignored, TimelineEntry.kind == EntryKind.SYSTEM
            )
        )
    assert ignored in {c.id for c in due}
    assert entry is not None and "Acompanhamento marcado" in entry
    assert get_settings().firm_name  # settings untouched


async def test_an_analyst_template_mail_is_a_threaded_reply_not_bot_mail(
    smtp_server: SmtpServer,
) -> None:
    """Issue 9, defect 7: do_send_template on e-mail carried no threading data, no [INF-…]
    subject, and came out with the automatic-answer footer and Auto-Submitted."""
    from api.templates.service import do_send_template

    t = tag()
    address = f"template-{t}@lojadomarco.com.br"
    conversation_id = await email_conversation(address)
    their_id = f"their-{t}@lojadomarco.com.br"
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        session.add(
            Message(
                conversation_id=conversation.id,
                case_id=conversation.case_id,
                direction=Direction.INBOUND,
                channel=Channel.EMAIL,
                author_kind=AuthorKind.INFRINGER,
                text="Recebi a notificação, qual é o prazo?",
                subject="Notificação extrajudicial",
                provider_id=their_id,
                delivery_status=DeliveryStatus.RECEIVED,
                meta={"references": [f"notice-{t}@tratativa.example"]},
            )
        )
        await session.flush()
        case = await session.get(Case, conversation.case_id)
        assert case is not None
        await session.refresh(case, ["brand", "infringer"])
        reference = case.reference
        message = await do_send_template(
            session,
            conversation=conversation,
            case=case,
            name="primeiro_contato",
            actor=Actor(ActorKind.ANALYST, name="Ana Analista"),
        )
        message_id = message.id
    await deliver_due({Channel.EMAIL: sender_for(smtp_server)})
    [mail] = delivered_to(smtp_server, address)
    assert mail["In-Reply-To"] == f"<{their_id}>"
    assert mail["References"].split() == [f"<notice-{t}@tratativa.example>", f"<{their_id}>"]
    assert mail["Subject"] == f"Re: Notificação extrajudicial [{reference}]"
    assert mail["Auto-Submitted"] is None
    text = plain_text(mail)
    assert "resposta automática" not in text
    assert "Atenciosamente,\nAna Analista\n" in text
    assert f"caso {reference}" in text
    assert (await get_message(message_id)).delivery_status is DeliveryStatus.SENT


async def test_mail_queued_without_e_mail_meta_is_presented_by_who_wrote_it(
    smtp_server: SmtpServer,
) -> None:
    """The outbox carries the author: an analyst's bare outbound is never dressed as bot mail."""
    address = f"bare-{tag()}@lojadomarco.com.br"
    conversation_id = await email_conversation(address)
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        from api.conversations.outbound import Outbound

        await do_queue_outbound(
            session,
            conversation=conversation,
            outbound=Outbound(text="Segue o retorno.", subject="Retorno"),
            actor=Actor(ActorKind.ANALYST, name="Ana"),
        )
    await deliver_due({Channel.EMAIL: sender_for(smtp_server)})
    [mail] = delivered_to(smtp_server, address)
    assert mail["Auto-Submitted"] is None
    assert "resposta automática" not in plain_text(mail)
