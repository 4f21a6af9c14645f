"""IMAP ingestion against a real Dovecot: nothing lost or doubled across reconnects, crashes and
UIDVALIDITY changes; IDLE; auto-replies kept silent; bounces mapped to our outbound mail;
oversized attachments and mails refused with a reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

import api.channels.email.imap as imap_module
from api.cases.lifecycle import CaseStatus
from api.channels.email.imap import ImapMailbox, ingest_once, run_imap_ingestion
from api.channels.email.ingest import BOUNCE_LOOKBACK, do_ingest_email
from api.channels.email.models import ImapCursor
from api.channels.email.parser import content_hash, parse_email
from api.config import ImapSettings, get_settings
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    Conversation,
    DeliveryStatus,
    Direction,
    Message,
)
from api.conversations.scheduling import turn_scheduler
from api.conversations.service import create_conversation
from api.db import unit_of_work, utcnow
from api.engine.turns import process_conversation
from api.outbox.models import OutboxItem
from api.storage import read_blob
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_case, make_infringer
from tests.helpers.turns import RecordingScheduler
from tests.integration.email_servers import (  # noqa: F401  (pytest fixtures)
    Dovecot,
    corpus,
    dovecot_fixture,
    imap_folder_fixture,
    load_eml,
    make_mail,
    personalize,
    run_dovecot,
    tagged_id,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]


def tag() -> str:
    return uuid.uuid4().hex[:10]


def external_id(raw: bytes) -> str:
    return parse_email(raw).message_id or content_hash(raw)


async def copies(ids: list[str]) -> dict[str, int]:
    """How many stored messages carry each provider id."""
    async with unit_of_work() as session:
        rows = await session.execute(
            sa.select(Message.provider_id, sa.func.count())
            .where(Message.channel == Channel.EMAIL, Message.provider_id.in_(ids))
            .group_by(Message.provider_id)
        )
        return {str(pid): int(n) for pid, n in rows.all()}


async def inbound(provider_id: str) -> Message | None:
    async with unit_of_work() as session:
        return await session.scalar(
            sa.select(Message).where(
                Message.channel == Channel.EMAIL, Message.provider_id == provider_id
            )
        )


async def until(check: Callable[[], object], *, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_nothing_lost_or_doubled_across_reconnect_crash_and_uidvalidity_change(
    dovecot: Dovecot, imap_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tag()
    account = dovecot.account(imap_folder)
    first = [personalize(load_eml(name), t) for name in corpus()]
    dovecot.append(imap_folder, first)

    stats = await ingest_once(account)
    assert (stats.fetched, stats.stored, stats.duplicates) == (len(first), len(first), 0)
    # A new connection reconciles from the stored cursor: nothing new, nothing fetched.
    assert (await ingest_once(account)).fetched == 0

    more = [
        make_mail(
            sender=f"s{i}-{t}@loja.com.br", subject=f"m{i}", body="x", message_id=f"m{i}-{t}@x"
        )
        for i in range(3)
    ]
    dovecot.append(imap_folder, more)
    real = do_ingest_email
    calls = 0

    async def database_dies_on_second(session: AsyncSession, raw: bytes, **kw: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))
        return await real(session, raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(imap_module, "do_ingest_email", database_dies_on_second)
    with pytest.raises(sa.exc.OperationalError):
        await ingest_once(account)
    monkeypatch.setattr(imap_module, "do_ingest_email", real)
    resumed = await ingest_once(account)
    assert (resumed.fetched, resumed.stored) == (2, 2)

    old_validity = dovecot.uidvalidity(imap_folder)
    dovecot.recreate_folder(imap_folder)
    assert dovecot.uidvalidity(imap_folder) != old_validity
    no_id = make_mail(sender=f"semid-{t}@loja.com.br", subject="Sem Message-ID", body="texto")
    dovecot.append(imap_folder, [*first, *more, no_id])
    resynced = await ingest_once(account)
    assert (resynced.fetched, resynced.duplicates, resynced.stored) == (
        len(first) + 4,
        len(first) + 3,
        1,
    )
    # Without a Message-ID the content hash recognises it after yet another generation.
    dovecot.recreate_folder(imap_folder)
    dovecot.append(imap_folder, [no_id])
    assert (await ingest_once(account)).duplicates == 1

    ids = [external_id(raw) for raw in [*first, *more, no_id]]
    assert await copies(ids) == dict.fromkeys(ids, 1)
    async with unit_of_work() as session:
        cursors = (
            await session.scalars(
                sa.select(ImapCursor).where(
                    ImapCursor.account == account.key, ImapCursor.folder == imap_folder
                )
            )
        ).all()
    assert len(cursors) == 3
    assert sorted(c.last_uid for c in cursors) == [1, len(first) + 3, len(first) + 4]


async def test_a_mail_the_pipeline_cannot_handle_is_kept_raw_and_does_not_block(
    dovecot: Dovecot, imap_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tag()
    raws = [
        make_mail(sender=f"a-{t}@x.com.br", subject="a", body="a", message_id=f"a-{t}@x"),
        make_mail(sender=f"b-{t}@x.com.br", subject="b", body="b", message_id=f"b-{t}@x"),
    ]
    dovecot.append(imap_folder, raws)
    real = do_ingest_email

    async def bug_on_first(session: AsyncSession, raw: bytes, **kw: object) -> object:
        if b"Subject: a" in raw:
            raise ValueError("a parser bug")
        return await real(session, raw, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(imap_module, "do_ingest_email", bug_on_first)
    stats = await ingest_once(dovecot.account(imap_folder))
    assert (stats.unparsed, stats.stored) == (1, 1)
    kept = await inbound(content_hash(raws[0]))
    assert kept is not None and kept.handled_at is not None
    meta = kept.meta or {}
    assert meta["ingest_error"] == "ValueError: a parser bug"
    assert read_blob(meta["raw_path"]) == raws[0]


async def test_the_worker_loop_idles_reconnects_and_reconciles() -> None:
    t = tag()
    folder = "Entrada"
    mails = [
        make_mail(
            sender=f"p{i}-{t}@loja.com.br", subject=f"p{i}", body="Oi", message_id=f"p{i}-{t}@x"
        )
        for i in range(3)
    ]
    seen = RecordingScheduler()
    with run_dovecot() as server:
        server.create_folder(folder)
        settings = get_settings().model_copy(
            update={
                "imap": ImapSettings(
                    host=server.host,
                    port=server.port,
                    user=server.user,
                    password=SecretStr(server.password),
                    ssl=False,
                    folder=folder,
                )
            }
        )
        stop = asyncio.Event()
        with turn_scheduler(seen):  # the worker installs the engine's; the task inherits it
            task = asyncio.create_task(run_imap_ingestion(settings, stop, idle_seconds=30))
        try:
            await asyncio.sleep(0.5)  # connected and idling
            await asyncio.to_thread(server.append, folder, [mails[0]])
            await until(lambda: inbound(f"p0-{t}@x"))

            # The server goes away; a mail is delivered while we are disconnected.
            await asyncio.to_thread(server.stop)
            await asyncio.to_thread(server.deliver_offline, folder, mails[1])
            await asyncio.sleep(0.3)
            await asyncio.to_thread(server.start)
            await until(lambda: inbound(f"p1-{t}@x"))  # the reconciling fetch on reconnect

            await asyncio.to_thread(server.append, folder, [mails[2]])
            await until(lambda: inbound(f"p2-{t}@x"))  # back to IDLE
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=15)
    assert await copies([f"p{i}-{t}@x" for i in range(3)]) == {f"p{i}-{t}@x": 1 for i in range(3)}
    # Each new answerable mail asked for its bot turn once.
    assert len(seen.requests) == 3


async def test_auto_replies_are_stored_and_never_answered(
    dovecot: Dovecot, imap_folder: str
) -> None:
    t = tag()
    raw = personalize(load_eml("out_of_office.eml"), t)
    dovecot.append(imap_folder, [raw])
    seen = RecordingScheduler()
    with turn_scheduler(seen):
        stats = await ingest_once(dovecot.account(imap_folder))
    assert stats.stored == 1 and seen.requests == []
    message = await inbound(external_id(raw))
    assert message is not None
    meta = message.meta or {}
    assert meta["answerable"] is False and meta["email_kind"] == "auto_reply"
    assert meta["auto_reason"] == "cabeçalho Auto-Submitted: auto-replied"
    assert message.handled_at is not None
    assert await process_conversation(message.conversation_id, gateway=None) == 0
    async with unit_of_work() as session:
        queued = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.conversation_id == message.conversation_id)
        )
    assert queued == 0


async def _sent_to(address: str, provider_id: str) -> int:
    """An outbound e-mail the SMTP server accepted (as the outbox leaves it)."""
    async with unit_of_work() as session:
        infringer = await make_infringer(session, emails=(address,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.NOTIFICADO)
        found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw=address)
        conversation = await create_conversation(
            session, contact=found.contact, channel=Channel.EMAIL, address=address, case=case
        )
        message = Message(
            conversation_id=conversation.id,
            case_id=case.id,
            direction=Direction.OUTBOUND,
            channel=Channel.EMAIL,
            author_kind=AuthorKind.SYSTEM,
            text="Notificação",
            subject=f"Notificação [{case.reference}]",
            provider_id=provider_id,
            delivery_status=DeliveryStatus.SENT,
        )
        session.add(message)
        await session.flush()
        return message.id


async def test_a_bounce_fails_our_outbound_message_with_the_diagnostic(
    dovecot: Dovecot, imap_folder: str
) -> None:
    t = tag()
    recipient = f"vendas-{t}@lojainexistente.com.br"
    ours = tagged_id("tt.77.b1c2d3e4f5a6b7c8d9e0@tratativa.example", t)
    by_id = await _sent_to(recipient, ours)
    dsn = personalize(load_eml("dsn_bounce.eml"), t, {"vendas@lojainexistente.com.br": recipient})
    # The same report without the returned headers: mapped by Final-Recipient instead.
    other = f"compras-{t}@lojainexistente.com.br"
    by_recipient = await _sent_to(other, f"tt.78.{t}@tratativa.example")
    headers_part = dsn.index(b"Content-Description: Undelivered Message Headers")
    boundary = dsn.rfind(b"--4ZxY1k2Lm3z9v", 0, headers_part)
    bare = (
        personalize(dsn[:boundary], tag(), {recipient: other})
        + b"--4ZxY1k2Lm3z9v.1740921303/mx.tratativa.example--\r\n"
    )
    dovecot.append(imap_folder, [dsn, bare])

    stats = await ingest_once(dovecot.account(imap_folder))
    assert (stats.bounces, stats.stored) == (2, 0)
    async with unit_of_work() as session:
        for message_id in (by_id, by_recipient):
            message = await session.get(Message, message_id)
            assert message is not None
            assert message.delivery_status is DeliveryStatus.FAILED
            assert message.delivery_error is not None
            assert "5.1.1" in message.delivery_error and "User unknown" in message.delivery_error
            bounce = (message.meta or {})["bounce"]
            assert read_blob(bounce["raw_path"]).startswith(b"Return-Path: <>")
            entry = await session.scalar(
                sa.select(TimelineEntry).where(
                    TimelineEntry.message_id == message_id, TimelineEntry.kind == EntryKind.DELIVERY
                )
            )
            assert entry is not None and "não entregue" in entry.summary
    assert await inbound(external_id(dsn)) is None  # a report, not a conversation message


async def test_a_report_naming_only_a_recipient_maps_to_recent_mail_not_to_older_mail() -> None:
    """Without the returned headers a report is mapped by Final-Recipient, to mail sent within
    BOUNCE_LOOKBACK only: an older notice to that address is not failed by it."""
    t = tag()
    address = f"antigo-{t}@lojainexistente.com.br"
    old = await _sent_to(address, f"tt.79.{t}@tratativa.example")
    async with unit_of_work() as session:
        sent = await session.get(Message, old)
        assert sent is not None
        sent.created_at = utcnow() - BOUNCE_LOOKBACK - dt.timedelta(days=1)
    dsn = personalize(load_eml("dsn_bounce.eml"), t, {"vendas@lojainexistente.com.br": address})
    headers_part = dsn.index(b"Content-Description: Undelivered Message Headers")
    boundary = dsn.rfind(b"--4ZxY1k2Lm3z9v", 0, headers_part)
    bare = dsn[:boundary] + b"--4ZxY1k2Lm3z9v.1740921303/mx.tratativa.example--\r\n"

    async with unit_of_work() as session:
        result = await do_ingest_email(session, bare)
    assert result.message_id is not None and result.message_id != old
    async with unit_of_work() as session:  # a newer notice in the same conversation
        sent = await session.get(Message, old)
        assert sent is not None
        newer = Message(
            conversation_id=sent.conversation_id,
            case_id=sent.case_id,
            direction=Direction.OUTBOUND,
            channel=Channel.EMAIL,
            author_kind=AuthorKind.SYSTEM,
            text="Segunda notificação",
            provider_id=f"tt.80.{t}@tratativa.example",
            delivery_status=DeliveryStatus.SENT,
        )
        session.add(newer)
        await session.flush()
        recent = newer.id
    async with unit_of_work() as session:
        again = await do_ingest_email(session, personalize(bare, tag()))
    assert again.message_id == recent
    async with unit_of_work() as session:
        statuses = {
            message_id: status
            for message_id, status in await session.execute(
                sa.select(Message.id, Message.delivery_status).where(Message.id.in_((old, recent)))
            )
        }
    assert statuses == {old: DeliveryStatus.SENT, recent: DeliveryStatus.FAILED}


async def test_an_unmapped_bounce_is_kept_as_unanswerable_mail(
    dovecot: Dovecot, imap_folder: str
) -> None:
    t = tag()
    dsn = personalize(load_eml("dsn_bounce.eml"), t)
    dovecot.append(imap_folder, [dsn])
    stats = await ingest_once(dovecot.account(imap_folder))
    assert stats.stored == 1
    message = await inbound(external_id(dsn))
    assert message is not None and (message.meta or {})["answerable"] is False
    assert (message.meta or {})["email_kind"] == "bounce"


async def test_an_oversized_attachment_is_refused_with_the_reason(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "max_attachment_bytes", 100)
    raw = personalize(load_eml("pdf_attachment.eml"), tag())
    result = await do_ingest_email(session, raw)
    assert result.message_id is not None
    attachment = await session.scalar(
        sa.select(Attachment).where(Attachment.message_id == result.message_id)
    )
    assert attachment is not None
    assert attachment.refused_reason == "arquivo de 303 bytes excede o limite de 100 bytes"
    assert attachment.storage_path is None and attachment.sha256 is None
    assert attachment.filename == "comprovante_pagamento_março.pdf"
    assert attachment.size == 303
    message = await session.get(Message, result.message_id)
    assert message is not None and "comprovante do pagamento" in message.text


async def test_attachments_within_the_limit_are_stored_by_hash(session: AsyncSession) -> None:
    raw = personalize(load_eml("inline_cid.eml"), tag())
    result = await do_ingest_email(session, raw)
    rows = (
        await session.scalars(
            sa.select(Attachment).where(Attachment.message_id == result.message_id)
        )
    ).all()
    assert {(a.filename, a.content_type, a.refused_reason) for a in rows} == {
        ("print.png", "image/png", None),
        ("logo.png", "image/png", None),
    }
    assert all(a.sha256 and a.storage_path for a in rows)
    message = await session.get(Message, result.message_id)
    assert message is not None
    meta = message.meta or {}
    assert set(meta["inline_images"]) == {"ii_m7x2k9ab0", "logo.rc@rcimports"}
    assert 'src="cid:ii_m7x2k9ab0"' in meta["html"]


async def test_a_mail_too_big_to_download_is_recorded_by_its_headers(
    dovecot: Dovecot, imap_folder: str
) -> None:
    raw = personalize(load_eml("lawyer_formal_cc.eml"), tag())
    dovecot.append(imap_folder, [raw])
    stats = await ingest_once(dovecot.account(imap_folder), max_message_bytes=1000)
    assert stats.stored == 1
    message = await inbound(external_id(raw))
    assert message is not None
    assert message.subject == "Notificação Extrajudicial - Ref. INF-2026-000131 - Resposta"
    assert "excede o limite de 1000 bytes" in message.text


async def test_answerable_mail_is_pending_for_the_bot(dovecot: Dovecot, imap_folder: str) -> None:
    raw = personalize(load_eml("iphone_reply.eml"), tag())
    dovecot.append(imap_folder, [raw])
    seen = RecordingScheduler()
    with turn_scheduler(seen):
        await ingest_once(dovecot.account(imap_folder))
    message = await inbound(external_id(raw))
    assert message is not None and message.handled_at is None
    assert message.direction is Direction.INBOUND
    assert message.text == "Ok, vou verificar com meu contador e retorno até sexta."
    async with unit_of_work() as session:
        conversation = await session.get(Conversation, message.conversation_id)
    assert conversation is not None and seen.conversation_ids == [conversation.id]


async def test_a_large_mailbox_is_listed_in_one_line(dovecot: Dovecot, imap_folder: str) -> None:
    # Regression: a FETCH listing of ~1000 lines overflowed aioimaplib's recursive response
    # parser (iroco-co/aioimaplib#118) and left the command hanging.
    t = tag()
    count = 1500
    tiny = [
        f"From: a@b.com.br\r\nSubject: {i}\r\nMessage-ID: <l{i}-{t}@b>\r\n\r\nx\r\n".encode()
        for i in range(count)
    ]
    await asyncio.to_thread(dovecot.append, imap_folder, tiny)
    mailbox = ImapMailbox(dovecot.account(imap_folder))
    await mailbox.connect()
    try:
        await mailbox.select(imap_folder)
        assert await mailbox.uids_after(0) == list(range(1, count + 1))
        assert await mailbox.uids_after(count - 2) == [count - 1, count]
        assert await mailbox.uids_after(count) == []
        assert set(await mailbox.sizes(list(range(1, 26)))) == set(range(1, 26))
    finally:
        await mailbox.close()
