"""The batched initial sync (api/channels/email/imap.py `_sync_in_batches`): a process killed in
the middle of a batch loses nothing and doubles nothing once the sync resumes, and a batch ends
exactly as the same mails do one at a time (outcome, case, conversation, rows, events)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import api.channels.email.imap as imap_module
from api.cases.lifecycle import CaseStatus
from api.cases.models import Case
from api.channels.email.imap import ingest_once
from api.channels.email.ingest import (
    Ingested,
    MailToIngest,
    do_ingest_email,
    do_ingest_emails,
)
from api.channels.email.models import ImapCursor
from api.channels.email.parser import content_hash, parse_email
from api.channels.email.prepare import PreparedMail, prepare_mail
from api.config import get_settings
from api.contacts.models import ContactKind
from api.contacts.service import do_identify_sender
from api.conversations.models import (
    Attachment,
    AuthorKind,
    Channel,
    DeliveryStatus,
    Direction,
    MediaState,
    Message,
)
from api.conversations.scheduling import turn_scheduler
from api.conversations.service import create_conversation
from api.db import unit_of_work
from api.events.models import StoredEvent
from api.identifiers.documents import find_documents
from api.inbox.models import MatchSuggestion
from api.storage import blob_path, read_blob
from api.timeline.models import EntryKind, TimelineEntry
from tests.factories import make_case, make_infringer
from tests.helpers.processes import running
from tests.helpers.turns import RecordingScheduler
from tests.integration.email_servers import (  # noqa: F401  (pytest fixtures)
    Dovecot,
    corpus,
    dovecot_fixture,
    imap_folder_fixture,
    load_eml,
    make_mail,
    personalize,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("database_url")]

ROOT = Path(__file__).resolve().parents[2]
BATCH = 30


def tag() -> str:
    return uuid.uuid4().hex[:10]


def external_id(raw: bytes) -> str:
    return parse_email(raw).message_id or content_hash(raw)


def mailbox_of(t: str, count: int) -> list[bytes]:
    """`count` distinct mails of every corpus shape (replies, HTML, attachments, inline images,
    an out-of-office, an unmapped bounce), each personalized."""
    shapes = [load_eml(name) for name in corpus()]
    return [personalize(shapes[i % len(shapes)], f"{t}n{i}") for i in range(count)]


_KILLER = """
import asyncio, os, signal, sys
sys.path.insert(0, {root!r})
import api.channels.email.imap as imap
from api.channels.email.imap import ImapAccount, ingest_once

imap.SYNC_BATCH, imap.BATCH_MIN = {batch}, 1
real = imap.do_advance_cursor
calls = 0

async def advance_then_die(session, **kw):
    # Called inside the batch's transaction after every row of the batch was written: the
    # second batch is complete in the database but not committed when the process dies.
    global calls
    calls += 1
    if calls == 2:
        await session.flush()
        import api.channels.email.prepare as prepare
        print("parse workers:", *prepare._pool._processes, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    await real(session, **kw)

imap.do_advance_cursor = advance_then_die
asyncio.run(ingest_once(ImapAccount(**{account!r})))
"""


async def test_a_sync_killed_mid_batch_resumes_with_every_mail_stored_once(
    dovecot: Dovecot, imap_folder: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    t = tag()
    raws = mailbox_of(t, 100)
    dovecot.append(imap_folder, raws)
    account = dovecot.account(imap_folder)
    ids = [external_id(raw) for raw in raws]

    script = _KILLER.format(root=str(ROOT), batch=BATCH, account=account.__dict__)
    # Output to a file, not a pipe: the killed process's parse workers may outlive it briefly.
    log = tmp_path / "killed.log"
    with log.open("wb") as output:
        killed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", textwrap.dedent(script)],
            env={**os.environ, "EMAIL_PARSE_WORKERS": "2"},
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=300,
        )
    assert killed.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    # Its parse workers, never told to stop, notice their parent is gone and exit.
    [workers] = [line for line in log.read_text().splitlines() if line.startswith("parse workers:")]
    orphans = [int(pid) for pid in workers.split(":")[1].split()]
    assert len(orphans) == 2
    for _ in range(300):  # each checks its parent every PARENT_CHECK_SECONDS (1 s)
        if not any(running(pid) for pid in orphans):
            break
        await asyncio.sleep(0.05)
    assert not any(running(pid) for pid in orphans)

    # Exactly the first batch survived, with its cursor; nothing of the second.
    assert sorted((await copies(ids)).values()) == [1] * BATCH
    assert set(await copies(ids)) == set(ids[:BATCH])
    assert await cursor(account.key, imap_folder) == BATCH

    monkeypatch.setattr(imap_module, "SYNC_BATCH", BATCH)
    monkeypatch.setattr(imap_module, "BATCH_MIN", 1)
    # The resumed sync also bounds its batches by size: ~10 mails of this corpus a batch
    # (checked after each FETCH of 5), so more batches than the 3 the count alone makes.
    monkeypatch.setattr(imap_module, "SYNC_BATCH_BYTES", 20_000)
    monkeypatch.setattr(imap_module, "FETCH_BATCH", 5)
    transactions = counting(monkeypatch, "do_advance_cursor")
    seen = RecordingScheduler()
    with turn_scheduler(seen):
        resumed = await ingest_once(account)
    assert (resumed.fetched, resumed.stored, resumed.duplicates) == (70, 70, 0)
    assert len(transactions) > -(-70 // BATCH)
    assert await cursor(account.key, imap_folder) == len(raws)
    # A second pass finds nothing new.
    assert (await ingest_once(account)).fetched == 0

    assert await copies(ids) == dict.fromkeys(ids, 1)
    async with unit_of_work() as session:
        messages = (
            await session.scalars(
                sa.select(Message).where(
                    Message.channel == Channel.EMAIL, Message.provider_id.in_(ids)
                )
            )
        ).all()
        by_id = {m.id: m for m in messages}
        entries = await _count_by(session, TimelineEntry.message_id, list(by_id), EntryKind.MESSAGE)
        events = await _events_by_message(session, list(by_id))
        attachments = await _count_by(session, Attachment.message_id, list(by_id))
    assert entries == dict.fromkeys(by_id, 1)
    assert events == dict.fromkeys(by_id, 1)
    for raw in raws:
        message = next(m for m in messages if m.provider_id == external_id(raw))
        meta = message.meta or {}
        # The original as the server served it is kept once, under its hash.
        kept = read_blob(meta["raw_path"])
        assert meta["raw_path"] == blob_path(hashlib.sha256(kept).hexdigest())
        assert external_id(kept) == message.provider_id
        assert attachments.get(message.id, 0) == len(parse_email(raw).attachments)
        assert (message.meta or {})["imap"]["uid"] == raws.index(raw) + 1
    # Each answerable mail of the resumed part asked for its bot turn once, after commit.
    answerable = {m.id for m in messages if m.handled_at is None}
    resumed_ids = {m.id for m in messages if m.provider_id in set(ids[BATCH:])}
    assert sorted(r.message_id for r in seen.requests) == sorted(answerable & resumed_ids)


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Record the `uid` of each call to imap_module.<name> (a batch's cursor move)."""
    real = getattr(imap_module, name)
    calls: list[int] = []

    async def wrapper(session: AsyncSession, **kw: Any) -> None:
        calls.append(int(kw["uid"]))
        await real(session, **kw)

    monkeypatch.setattr(imap_module, name, wrapper)
    return calls


async def test_a_failing_batch_goes_one_mail_at_a_time_and_a_database_outage_aborts_the_pass(
    dovecot: Dovecot, imap_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = tag()
    raws = mailbox_of(t, 3 * BATCH)
    dovecot.append(imap_folder, raws)
    account = dovecot.account(imap_folder)
    ids = [external_id(raw) for raw in raws]
    monkeypatch.setattr(imap_module, "SYNC_BATCH", BATCH)
    monkeypatch.setattr(imap_module, "BATCH_MIN", 1)
    real = do_ingest_emails
    batches = 0

    async def faulty(session: AsyncSession, mails: list[MailToIngest]) -> list[Ingested]:
        nonlocal batches
        batches += 1
        done = await real(session, mails)  # every row written, then the fault
        if batches == 1:
            raise ValueError("a bug in the batch path")
        if batches == 2:
            raise sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection"))
        return done

    monkeypatch.setattr(imap_module, "do_ingest_emails", faulty)
    with pytest.raises(sa.exc.OperationalError):
        await ingest_once(account)
    # The first batch went one mail at a time (each with its cursor); the second rolled back
    # whole and the pass stopped there.
    assert set(await copies(ids)) == set(ids[:BATCH])
    assert await cursor(account.key, imap_folder) == BATCH

    resumed = await ingest_once(account)
    assert (resumed.fetched, resumed.stored) == (2 * BATCH, 2 * BATCH)
    assert await copies(ids) == dict.fromkeys(ids, 1)
    assert await cursor(account.key, imap_folder) == len(raws)


async def test_a_connection_lost_while_fetching_ahead_keeps_every_batch_stored_before_it(
    dovecot: Dovecot, imap_folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batches are fetched and parsed while one is stored: a fetch that fails ahead
    stops the pass after the batches already fetched whole, and nothing of the failed one."""
    t = tag()
    raws = mailbox_of(t, 4 * BATCH)
    dovecot.append(imap_folder, raws)
    account = dovecot.account(imap_folder)
    ids = [external_id(raw) for raw in raws]
    monkeypatch.setattr(imap_module, "SYNC_BATCH", BATCH)
    monkeypatch.setattr(imap_module, "BATCH_MIN", 1)
    monkeypatch.setattr(imap_module, "FETCH_BATCH", 10)
    real = imap_module._fetch
    fetches = 0

    async def dropping(mailbox: Any, uids: Any, limit: int) -> Any:
        nonlocal fetches
        fetches += 1
        if fetches == 8:  # the third batch's second chunk
            raise imap_module.ImapError("connection lost")
        return await real(mailbox, uids, limit)

    monkeypatch.setattr(imap_module, "_fetch", dropping)
    with pytest.raises(imap_module.ImapError):
        await ingest_once(account)
    assert set(await copies(ids)) == set(ids[: 2 * BATCH])
    assert await cursor(account.key, imap_folder) == 2 * BATCH

    monkeypatch.setattr(imap_module, "_fetch", real)
    resumed = await ingest_once(account)
    assert (resumed.fetched, resumed.stored, resumed.duplicates) == (2 * BATCH, 2 * BATCH, 0)
    assert await copies(ids) == dict.fromkeys(ids, 1)
    assert await cursor(account.key, imap_folder) == len(raws)


async def copies(ids: list[str]) -> dict[str, int]:
    async with unit_of_work() as session:
        rows = await session.execute(
            sa.select(Message.provider_id, sa.func.count())
            .where(Message.channel == Channel.EMAIL, Message.provider_id.in_(ids))
            .group_by(Message.provider_id)
        )
        return {str(pid): int(n) for pid, n in rows.all()}


async def cursor(account_key: str, folder: str) -> int:
    async with unit_of_work() as session:
        found = await session.scalar(
            sa.select(ImapCursor.last_uid).where(
                ImapCursor.account == account_key, ImapCursor.folder == folder
            )
        )
    return int(found or 0)


async def _count_by(
    session: AsyncSession, column: Any, ids: list[int], kind: EntryKind | None = None
) -> dict[int, int]:
    query = sa.select(column, sa.func.count()).where(column.in_(ids)).group_by(column)
    if kind is not None:
        query = query.where(TimelineEntry.kind == kind)
    return {int(k): int(n) for k, n in (await session.execute(query)).all()}


async def _events_by_message(session: AsyncSession, ids: list[int]) -> dict[int, int]:
    rows = await session.scalars(
        sa.select(StoredEvent).where(
            StoredEvent.kind == "message.received",
            StoredEvent.conversation_id.in_(
                sa.select(Message.conversation_id).where(Message.id.in_(ids))
            ),
        )
    )
    found: dict[int, int] = {}
    for event in rows.all():
        message_id = int(event.payload["message_id"])
        if message_id in ids:
            found[message_id] = found.get(message_id, 0) + 1
    return found


# --- a batch ends as the same mails one at a time ------------------------------------------


async def scenario(
    session: AsyncSession, t: str
) -> tuple[list[bytes], dict[int, str], dict[str, str]]:
    """Mails that exercise every rule and every dependency a batch has to respect, the cases
    they may land on (id → role), and the strings unique to this copy (→ a placeholder)."""
    domain = f"empresa{t}.com.br"
    known = await make_infringer(session, name=f"Fulano {t} Silva", emails=(f"a@{domain}",))
    by_address = await make_case(session, infringer=known, status=CaseStatus.NOTIFICADO)
    by_reference = await make_case(session, status=CaseStatus.NOTIFICADO)
    by_reference.reference = f"INF-2032-{int(t[:6], 16) % 10**6:06d}"
    documented = await make_infringer(session)
    by_document = await make_case(session, infringer=documented, status=CaseStatus.NOTIFICADO)
    listing = f"https://produto.mercadolivre.com.br/MLB-{int(t[:8], 16)}"
    by_listing = await make_case(session, listings=(listing,), status=CaseStatus.NOTIFICADO)
    await session.flush()
    ours = f"out-{t}@tratativa.example"
    found = await do_identify_sender(session, kind=ContactKind.EMAIL, raw=f"b@{domain}")
    outbound_conversation = await create_conversation(
        session, contact=found.contact, channel=Channel.EMAIL, address=f"b@{domain}",
        case=by_address,
    )  # fmt: skip
    session.add(
        Message(
            conversation_id=outbound_conversation.id,
            case_id=by_address.id,
            direction=Direction.OUTBOUND,
            channel=Channel.EMAIL,
            author_kind=AuthorKind.BOT,
            text="Notificação",
            provider_id=ours,
            delivery_status=DeliveryStatus.SENT,
        )
    )
    await session.flush()

    def mail(sender: str, subject: str, body: str, mid: str | None, **headers: str) -> bytes:
        return make_mail(
            sender=sender,
            subject=subject,
            body=body,
            message_id=f"{mid}-{t}@x" if mid else None,
            headers=headers,
        )

    mails = [
        mail(f"a@{domain}", "Re: notificação", "Recebi, vou ver.", "m1"),
        mail(f"novo1-{t}@gmail.com", "Re: aviso", "Sobre o aviso", "m2", **{"In-Reply-To": f"<{ours}>"}),
        mail(f"novo2-{t}@gmail.com", f"Sobre {by_reference.reference}", "Oi", "m3"),
        mail(f"novo3-{t}@gmail.com", "Re: sobre", "Sou sócio dele", "m5", **{"In-Reply-To": f"<m3-{t}@x>"}),
        mail(f"a@{domain}", "Re: notificação", "Mais uma coisa.", "m4"),
        mail(f"ferias-{t}@gmail.com", "Resposta automática: fora do escritório", "Volto dia 10", "m6", **{"Auto-Submitted": "auto-replied"}),
        mail(f"novo4-{t}@gmail.com", "Documento", f"Meu CPF é {documented.document}", "m7"),
        mail(f"novo5-{t}@gmail.com", "Anúncio", f"O anúncio {listing} já saiu do ar", "m8"),
        mail(f"novo1-{t}@gmail.com", "Re: aviso", "Sobre o aviso", "m2", **{"In-Reply-To": f"<{ours}>"}),
        mail(f"outro-{t}@{domain}", "Contato", "Sou da empresa", "m9"),
        mail(f"semid-{t}@gmail.com", "Sem id", "Mensagem sem Message-ID", None),
        mail(f'"Fulano {t} Silva" <nome-{t}@gmail.com>', "Oi", "Escrevo sobre o caso", "m10"),
        *mailbox_of(t, 12),
    ]  # fmt: skip
    roles = {
        by_address.id: "address",
        by_reference.id: "reference",
        by_document.id: "document",
        by_listing.id: "listing",
    }
    document = documented.document or ""
    formatted = [d.formatted for d, _, _ in find_documents(f"CPF {document}")]
    unique = {t: "T", by_reference.reference: "REF", listing: "URL", document: "DOC"}
    unique.update(dict.fromkeys(formatted, "DOC"))
    return mails, roles, unique


async def outcome(
    session: AsyncSession, result: Ingested, roles: dict[int, str], unique: dict[str, str]
) -> dict[str, Any]:
    """What a stored mail became, with ids replaced by roles and the tag by "T"."""
    shown: dict[str, Any] = {"outcome": str(result.outcome)}
    if result.match is not None:
        shown["rule"] = result.match.rule
        shown["suggestions"] = [
            (roles.get(c.case_id, "other"), c.rule, c.score) for c in result.match.suggestions
        ]
    if result.message_id is None:
        return shown
    message = await session.get(Message, result.message_id)
    assert message is not None
    meta = dict(message.meta or {})
    for volatile in ("raw_path", "raw_sha256"):
        meta.pop(volatile, None)
    entries = (
        await session.scalars(
            sa.select(TimelineEntry.kind).where(TimelineEntry.message_id == message.id)
        )
    ).all()
    suggested = (
        await session.scalars(
            sa.select(MatchSuggestion.rule).where(MatchSuggestion.message_id == message.id)
        )
    ).all()
    attachments = [
        # The bytes differ between two copies (they carry the tag): what is compared is that a
        # stored file is there under its hash, not the hash.
        (
            name,
            content_type,
            size,
            str(state),
            refused,
            sha is None
            or (path == blob_path(sha) and hashlib.sha256(read_blob(path)).hexdigest() == sha),
        )
        for name, content_type, size, sha, path, state, refused in await session.execute(
            sa.select(
                Attachment.filename,
                Attachment.content_type,
                Attachment.size,
                Attachment.sha256,
                Attachment.storage_path,
                Attachment.media_state,
                Attachment.refused_reason,
            )
            .where(Attachment.message_id == message.id)
            .order_by(Attachment.id)
        )
    ]
    shown.update(
        case=roles.get(message.case_id or 0, message.case_id and "other"),
        answerable=message.handled_at is None,
        text=message.text,
        subject=message.subject,
        meta=meta,
        entries=sorted(str(e) for e in entries),
        suggested=sorted(suggested),
        attachments=attachments,
    )
    untagged: dict[str, Any] = _untag(shown, unique)
    return untagged


def _untag(value: Any, unique: dict[str, str]) -> Any:
    if isinstance(value, str):
        for old, new in unique.items():
            value = value.replace(old, new)
        return value
    if isinstance(value, dict):
        return {k: _untag(v, unique) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_untag(v, unique) for v in value]
    return value


async def test_a_batch_ends_exactly_as_the_same_mails_one_at_a_time(session: AsyncSession) -> None:
    one, many = tag(), tag()
    mails_one, roles_one, unique_one = await scenario(session, one)
    mails_many, roles_many, unique_many = await scenario(session, many)

    singly = [await do_ingest_email(session, raw) for raw in mails_one]
    # Prepared as the sync's parse workers do: raw originals and attachments already stored.
    batched = await do_ingest_emails(
        session, [MailToIngest(raw=raw, prepared=prepared(raw)) for raw in mails_many]
    )

    assert len(batched) == len(singly)
    for index, (a, b) in enumerate(zip(singly, batched, strict=True)):
        assert await outcome(session, b, roles_many, unique_many) == await outcome(
            session, a, roles_one, unique_one
        ), f"mail {index}"
    # Conversations group the same mails; every case engaged the same way.
    assert _groups([r.conversation_id for r in batched]) == _groups(
        [r.conversation_id for r in singly]
    )
    statuses: list[dict[str, str]] = []
    for roles in (roles_one, roles_many):
        rows = await session.execute(sa.select(Case.id, Case.status).where(Case.id.in_(roles)))
        statuses.append({roles[i]: str(s) for i, s in rows.all()})
    assert statuses[0] == statuses[1]
    assert statuses[1]["address"] == str(CaseStatus.EM_ATENDIMENTO)


def prepared(raw: bytes) -> PreparedMail:
    settings = get_settings()
    return prepare_mail(
        raw,
        storage_dir=str(settings.storage_dir),
        max_attachment_bytes=settings.max_attachment_bytes,
    )


async def test_an_oversized_attachment_prepared_by_a_worker_is_refused_and_not_stored(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "max_attachment_bytes", 100)
    big = personalize(load_eml("pdf_attachment.eml"), tag())
    small = personalize(load_eml("inline_cid.eml"), tag())
    ready = [prepared(big), prepared(small)]
    assert ready[0].attachment_blobs == (None,)  # left to the ingestion, which refuses it
    assert ready[0].parsed is not None and len(ready[0].parsed.attachments[0].data) == 303
    [stored_big, stored_small] = await do_ingest_emails(
        session,
        [MailToIngest(raw=raw, prepared=p) for raw, p in zip((big, small), ready, strict=True)],
    )
    refused = await session.scalar(
        sa.select(Attachment).where(Attachment.message_id == stored_big.message_id)
    )
    assert refused is not None and refused.media_state is MediaState.REFUSED
    assert refused.refused_reason == "arquivo de 303 bytes excede o limite de 100 bytes"
    assert refused.sha256 is None and refused.storage_path is None and refused.size == 303
    # The inline images (under 100 bytes each) were written by the worker, only referenced here.
    blobs = ready[1].attachment_blobs
    assert len(blobs) == 2 and None not in blobs
    images = (
        await session.scalars(
            sa.select(Attachment)
            .where(Attachment.message_id == stored_small.message_id)
            .order_by(Attachment.id)
        )
    ).all()
    assert [(i.media_state, i.sha256, i.storage_path, i.content_type) for i in images] == [
        (MediaState.STORED, b.sha256, b.path, "image/png") for b in blobs if b is not None
    ]
    originals = [a.data for a in parse_email(small).attachments]
    assert [read_blob(b.path) for b in blobs if b is not None] == originals
    message = await session.get(Message, stored_small.message_id)
    assert message is not None
    assert sorted((message.meta or {})["inline_images"].values()) == sorted(
        b.sha256 for b in blobs if b is not None
    )


def _groups(ids: list[int | None]) -> list[int]:
    first: dict[int | None, int] = {}
    return [first.setdefault(i, n) for n, i in enumerate(ids)]
