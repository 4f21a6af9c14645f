"""Gmail API connector (google-api-python-client + google-auth).

- Credentials: an OAuth client (id in config, secret named in `credentials_env`) and a refresh
  token per mailbox — or a service account with domain-wide delegation (its JSON key named in
  `credentials_env["service_account"]`), acting as the mailbox's address. Google may answer a refresh with a new refresh token and retire the old
  one: it is sealed into the mailbox row in its own transaction before the new access token is
  used, and from then on preferred over the environment's copy. A refresh refused because
  another process rotated first is retried once with the stored token.
- Sync: `history.list` (messageAdded and labelAdded into INBOX) from the stored historyId; a 404 (history
  too old) triggers a full resync of recent INBOX mail (since the last sync, with a day of
  slack) that creates no duplicates: every mail goes through the shared pipeline, which
  recognises a Message-ID it has seen (through any connector). The cursor moves only after the
  mail it covers is committed.
- Push: `users.watch` on a Pub/Sub topic (config `topic`), renewed a day before it expires; the
  push is only a hint to sync now — periodic polling stays the safety net.
- Replies: `users.messages.send` with the thread's `threadId` and our own MIME (the composer's
  In-Reply-To/References, `[INF-…]` subject, our Message-ID, which bounces are mapped by).
- 429/503 (and 403 rateLimitExceeded): `Throttled` with Retry-After (the runner and the outbox
  wait at least that long).

The client library is synchronous (httplib2); calls run in a thread. The Authorization header is
set per request from credentials we refresh ourselves, so no refresh ever happens behind our
back (google-auth-httplib2's AuthorizedHttp would rotate a token without saving it).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import json
import logging
import threading
from collections.abc import Callable
from email.utils import formataddr
from typing import Any

import google.auth.exceptions
import google.auth.transport.requests
import httplib2
import requests
from google.oauth2 import service_account
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.email.composer import Firm, compose_message, make_message_id
from api.channels.email.parser import normalize_msgid
from api.channels.email.sender import load_attachments
from api.channels.mailboxes.base import (
    CursorExpired,
    MailboxAuthError,
    MailboxError,
    MailboxRef,
    SyncStats,
    Throttled,
    ingest_raw,
    is_known,
    parse_retry_after,
)
from api.channels.mailboxes.models import Mailbox, MailboxProvider
from api.channels.mailboxes.service import (
    credential,
    do_save_cursor,
    do_save_push,
    do_save_token,
    unseal,
)
from api.config import get_settings
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.outbox.senders import Envelope, SendResult

log = logging.getLogger(__name__)

API_BASE_URL = "https://gmail.googleapis.com/"
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
PAGE_SIZE = 500
HTTP_TIMEOUT = 60
INITIAL_DAYS = 30  # how far back the first sync of a new mailbox reads
RESYNC_SLACK = dt.timedelta(days=1)
WATCH_RENEW_BEFORE = dt.timedelta(days=1)
_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})


class GmailNotFound(MailboxError):
    code = "gmail_not_found"


class _Local(threading.local):
    services: dict[str, Any]

    def __init__(self) -> None:
        self.services = {}


class GmailConnector:
    provider = MailboxProvider.GMAIL

    def __init__(self, *, maker: async_sessionmaker[AsyncSession] | None = None) -> None:
        self._maker = maker
        self._creds: dict[int, Any] = {}  # user or service-account credentials
        self._locks: dict[int, asyncio.Lock] = {}
        self._local = _Local()

    @property
    def maker(self) -> async_sessionmaker[AsyncSession]:
        return self._maker or get_sessionmaker()

    # --- credentials -------------------------------------------------------------------------
    async def _stored_refresh_token(self, box: MailboxRef) -> str | None:
        async with unit_of_work(self.maker) as session:
            row = await session.get(Mailbox, box.id)
            sealed = row.token_sealed if row is not None else None
        if sealed:
            token = unseal(sealed)
            if token:
                return token
            log.warning("mailbox %s: stored refresh token unreadable (SECRET_KEY?)", box.name)
        return credential(box.credentials_env, "refresh_token")

    async def credentials(self, box: MailboxRef, *, force: bool = False) -> Any:
        """Valid credentials for the mailbox, refreshing (and saving a rotated token) as needed."""
        lock = self._locks.setdefault(box.id, asyncio.Lock())
        async with lock:
            cached = self._creds.get(box.id)
            if cached is not None and cached.valid and not force:
                return cached
            if box.credentials_env.get("service_account"):
                delegated = await self._delegated(box)
                self._creds[box.id] = delegated
                return delegated
            client_secret = credential(box.credentials_env, "client_secret")
            if not client_secret:
                raise MailboxAuthError(
                    f"variável {box.credentials_env.get('client_secret')} (client secret) vazia"
                )
            last_error: Exception | None = None
            for _ in range(2):  # a second try re-reads a token another process just rotated
                refresh_token = await self._stored_refresh_token(box)
                if not refresh_token:
                    raise MailboxAuthError("sem refresh token (variável de ambiente vazia)")
                creds = Credentials(  # type: ignore[no-untyped-call]
                    token=None,
                    refresh_token=refresh_token,
                    client_id=str(box.config["client_id"]),
                    client_secret=client_secret,
                    token_uri=str(box.config.get("token_uri") or TOKEN_URI),
                    scopes=SCOPES,
                )
                try:
                    await asyncio.to_thread(_refresh, creds)
                except google.auth.exceptions.RefreshError as exc:
                    last_error = exc
                    continue
                except google.auth.exceptions.TransportError as exc:
                    raise MailboxError(f"servidor OAuth do Google inacessível: {exc}") from exc
                if creds.refresh_token and creds.refresh_token != refresh_token:
                    async with unit_of_work(self.maker) as session:
                        await do_save_token(
                            session, mailbox_id=box.id, token=str(creds.refresh_token)
                        )
                    log.info("mailbox %s: rotated refresh token saved", box.name)
                self._creds[box.id] = creds
                return creds
            raise MailboxAuthError(f"Google recusou o refresh token: {_oauth_error(last_error)}")

    async def _delegated(self, box: MailboxRef) -> Any:
        """A service account with domain-wide delegation acting as the mailbox's user (its JSON
        key in the variable `credentials_env["service_account"]` names; nothing to rotate)."""
        raw = credential(box.credentials_env, "service_account")
        if not raw:
            raise MailboxAuthError(
                f"variável {box.credentials_env.get('service_account')} (conta de serviço) vazia"
            )
        try:
            info = json.loads(raw)
            if box.config.get("token_uri"):
                info["token_uri"] = str(box.config["token_uri"])
            creds = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                info, scopes=SCOPES, subject=box.address
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise MailboxAuthError(f"chave da conta de serviço inválida: {exc}"[:300]) from exc
        try:
            await asyncio.to_thread(_refresh, creds)
        except google.auth.exceptions.RefreshError as exc:
            raise MailboxAuthError(
                f"Google recusou a conta de serviço (delegação no domínio?): {_oauth_error(exc)}"
            ) from exc
        except google.auth.exceptions.TransportError as exc:
            raise MailboxError(f"servidor OAuth do Google inacessível: {exc}") from exc
        return creds

    # --- calls -------------------------------------------------------------------------------
    def _service(self, box: MailboxRef) -> Any:
        base = str(box.config.get("api_base_url") or API_BASE_URL)
        if not base.endswith("/"):
            base += "/"
        service = self._local.services.get(base)
        if service is None:
            service = build(
                "gmail",
                "v1",
                http=httplib2.Http(timeout=HTTP_TIMEOUT),
                static_discovery=True,
                cache_discovery=False,
                client_options={"api_endpoint": base},
            )
            self._local.services[base] = service
        return service

    async def call(self, box: MailboxRef, make: Callable[[Any], Any]) -> dict[str, Any]:
        """Run one API request; a 401 refreshes the token once."""
        for attempt in range(2):
            creds = await self.credentials(box, force=attempt > 0)
            token = str(creds.token)

            def run(token: str = token) -> dict[str, Any]:
                request = make(self._service(box).users())
                request.headers["authorization"] = f"Bearer {token}"
                result = request.execute(num_retries=0)
                return result if isinstance(result, dict) else {}

            try:
                return await asyncio.to_thread(run)
            except HttpError as exc:
                status = int(exc.resp.status)
                if status == 401 and attempt == 0:
                    self._creds.pop(box.id, None)
                    continue
                raise _error(exc, status) from exc
            except (httplib2.HttpLib2Error, OSError, TimeoutError) as exc:
                raise MailboxError(f"Gmail inacessível: {type(exc).__name__}: {exc}") from exc
        raise MailboxAuthError("Gmail recusou o token de acesso renovado")

    # --- sync --------------------------------------------------------------------------------
    async def sync(
        self, box: MailboxRef, *, last_synced_at: dt.datetime | None = None
    ) -> SyncStats:
        stats = SyncStats()
        cursor = box.cursor
        if cursor:
            try:
                stats.cursor = await self._incremental(box, cursor, stats)
                return stats
            except CursorExpired:
                log.warning("mailbox %s: historyId %s expired; full resync", box.name, cursor)
                stats.full_resync = True
        since = (
            last_synced_at - RESYNC_SLACK
            if cursor and last_synced_at is not None
            else utcnow() - dt.timedelta(days=int(box.config.get("initial_days") or INITIAL_DAYS))
        )
        stats.cursor = await self._full(box, stats, since=since)
        return stats

    async def _incremental(self, box: MailboxRef, cursor: str, stats: SyncStats) -> str:
        page_token: str | None = None
        seen: set[str] = set()
        latest = cursor
        while True:
            try:
                page = await self.call(
                    box,
                    functools.partial(
                        _history_page, start=cursor, page_token=page_token, size=_page_size(box)
                    ),
                )
            except GmailNotFound as exc:
                raise CursorExpired(str(exc)) from exc
            latest = str(page.get("historyId") or latest)
            for record in page.get("history") or []:
                for gmail_id in _inbox_arrivals(record):
                    if gmail_id not in seen:
                        seen.add(gmail_id)
                        await self._ingest(box, gmail_id, stats)
            page_token = page.get("nextPageToken")
            if not page_token:
                break
            records = page.get("history") or []
            if records and records[-1].get("id"):
                # Progress within a long history: a pass cut short (throttled, crashed)
                # resumes after the last record whose mail is stored.
                async with unit_of_work(self.maker) as session:
                    await do_save_cursor(session, mailbox_id=box.id, cursor=str(records[-1]["id"]))
        async with unit_of_work(self.maker) as session:
            await do_save_cursor(session, mailbox_id=box.id, cursor=latest)
        return latest

    async def _full(self, box: MailboxRef, stats: SyncStats, *, since: dt.datetime) -> str:
        # The history id is read first: mail arriving while we list is picked up by the next
        # incremental pass (and recognised if we also listed it).
        profile = await self.call(box, lambda users: users.getProfile(userId="me"))
        start = str(profile["historyId"])
        ids: list[str] = []
        page_token: str | None = None
        query = f"after:{int(since.timestamp())}"
        while True:
            page = await self.call(
                box,
                functools.partial(
                    _list_page, query=query, page_token=page_token, size=_page_size(box)
                ),
            )
            ids += [str(m["id"]) for m in page.get("messages") or []]
            page_token = page.get("nextPageToken")
            if not page_token:
                break
        for gmail_id in reversed(list(dict.fromkeys(ids))):  # oldest first
            await self._ingest(box, gmail_id, stats, check_known=stats.full_resync)
        async with unit_of_work(self.maker) as session:
            await do_save_cursor(session, mailbox_id=box.id, cursor=start)
        return start

    async def _ingest(
        self, box: MailboxRef, gmail_id: str, stats: SyncStats, *, check_known: bool = False
    ) -> None:
        if check_known and await self._known(box, gmail_id):
            stats.fetched += 1
            stats.duplicates += 1
            return
        try:
            message = await self.call(
                box, lambda users: users.messages().get(userId="me", id=gmail_id, format="raw")
            )
        except GmailNotFound:
            return  # deleted between the listing and the fetch
        labels = message.get("labelIds") or []
        if "SENT" in labels or "DRAFT" in labels:
            return  # our own mail (or a draft) is not inbound
        raw = base64.urlsafe_b64decode(str(message.get("raw") or "") + "==")
        received = _internal_date(message.get("internalDate"))
        await ingest_raw(
            raw,
            box=box,
            stats=stats,
            received_at=received,
            ref={"message_ref": gmail_id, "thread_id": message.get("threadId")},
            maker=self.maker,
        )

    async def _known(self, box: MailboxRef, gmail_id: str) -> bool:
        """During a resync most mail is already stored: its Message-ID header (format=metadata,
        a few hundred bytes) is enough to recognise it without downloading the whole mail."""
        try:
            message = await self.call(
                box,
                lambda users: users.messages().get(
                    userId="me", id=gmail_id, format="metadata", metadataHeaders=["Message-ID"]
                ),
            )
        except GmailNotFound:
            return False
        headers = (message.get("payload") or {}).get("headers") or []
        value = next(
            (str(h.get("value")) for h in headers if str(h.get("name")).lower() == "message-id"),
            None,
        )
        return await is_known(normalize_msgid(value), maker=self.maker)

    # --- push --------------------------------------------------------------------------------
    async def renew_push(self, box: MailboxRef) -> None:
        topic = box.config.get("topic")
        if not topic:
            return
        if box.push_expires_at is not None and box.push_expires_at > utcnow() + WATCH_RENEW_BEFORE:
            return
        answer = await self.call(
            box,
            lambda users: users.watch(
                userId="me",
                body={
                    "topicName": topic,
                    "labelIds": ["INBOX"],
                    "labelFilterBehavior": "INCLUDE",
                },
            ),
        )
        expires = dt.datetime.fromtimestamp(int(answer["expiration"]) / 1000, tz=dt.UTC)
        async with unit_of_work(self.maker) as session:
            await do_save_push(session, mailbox_id=box.id, push_id=str(topic), expires_at=expires)

    # --- send --------------------------------------------------------------------------------
    async def send(self, box: MailboxRef, envelope: Envelope) -> SendResult:
        settings = get_settings()
        base_firm = Firm.from_settings(settings)
        firm = Firm(
            name=base_firm.name,
            site=base_firm.site,
            phone=base_firm.phone,
            email_from=formataddr((base_firm.name, box.address)),
            timezone=base_firm.timezone,
        )
        message_id = make_message_id(
            message_id=envelope.message_id,
            conversation_id=envelope.conversation_id,
            secret=settings.secret_key.get_secret_value(),
            domain=firm.domain,
        )
        mime = compose_message(
            envelope,
            firm=firm,
            message_id=message_id,
            attachments=load_attachments(envelope.attachments),
        )
        raw = base64.urlsafe_b64encode(mime.as_bytes()).decode()
        mailbox_ref = envelope.meta.get("mailbox") or {}
        # A thread of this mailbox only (default-sender mail answers no Gmail thread).
        thread_id = (
            mailbox_ref.get("thread_id") if mailbox_ref.get("mailbox_id") == box.id else None
        )
        body: dict[str, Any] = {"raw": raw}
        if thread_id:
            body["threadId"] = str(thread_id)
        # Exactly once: our Message-ID is the same on every retry of this outbox row, so a send
        # Gmail accepted before we could record it (a crash, a lost answer) is found in the
        # mailbox and not sent again.
        already = await self.call(
            box,
            functools.partial(
                _list_page, query=f"rfc822msgid:{message_id} in:sent", page_token=None, size=1,
                labels=None,
            ),
        )  # fmt: skip
        if already.get("messages"):
            log.info("mailbox %s: message %s was already sent", box.name, envelope.message_id)
            return SendResult(provider_id=message_id)
        try:
            await self.call(box, lambda users: users.messages().send(userId="me", body=body))
        except GmailNotFound:
            # The thread is gone (deleted in Gmail): the headers still thread it for them.
            body.pop("threadId", None)
            await self.call(box, lambda users: users.messages().send(userId="me", body=body))
        return SendResult(provider_id=message_id)


def _inbox_arrivals(record: dict[str, Any]) -> list[str]:
    """Message ids a history record brings into INBOX: new mail, and mail moved there later (a
    filter, or someone taking it out of spam: Gmail records that as labelsAdded, not
    messagesAdded)."""
    found: list[str] = []
    for added in record.get("messagesAdded") or []:
        message = added.get("message") or {}
        if message.get("id") and "INBOX" in (message.get("labelIds") or ["INBOX"]):
            found.append(str(message["id"]))
    for added in record.get("labelsAdded") or []:
        message = added.get("message") or {}
        if message.get("id") and "INBOX" in (added.get("labelIds") or []):
            found.append(str(message["id"]))
    return found


def _page_size(box: MailboxRef) -> int:
    return max(1, min(PAGE_SIZE, int(box.config.get("page_size") or PAGE_SIZE)))


def _history_page(users: Any, *, start: str, page_token: str | None, size: int) -> Any:
    return users.history().list(
        userId="me",
        startHistoryId=start,
        historyTypes=["messageAdded", "labelAdded"],
        labelId="INBOX",
        maxResults=size,
        pageToken=page_token,
    )


def _list_page(
    users: Any,
    *,
    query: str,
    page_token: str | None,
    size: int,
    labels: list[str] | None = ["INBOX"],  # noqa: B006  (never mutated)
) -> Any:
    return users.messages().list(
        userId="me", labelIds=labels, q=query, maxResults=size, pageToken=page_token
    )


def _refresh(creds: Any) -> None:
    session = requests.Session()
    try:
        creds.refresh(google.auth.transport.requests.Request(session=session))
    finally:
        session.close()


def _internal_date(value: object) -> dt.datetime | None:
    try:
        return dt.datetime.fromtimestamp(int(str(value)) / 1000, tz=dt.UTC)
    except (TypeError, ValueError):
        return None


def _error(exc: HttpError, status: int) -> MailboxError:
    reason, message = "", ""
    try:
        detail = json.loads(exc.content or b"{}").get("error") or {}
        message = str(detail.get("message") or "")
        reason = str(((detail.get("errors") or [{}])[0]).get("reason") or "")
    except (ValueError, AttributeError):
        message = str(exc)
    if status in (429, 503) or (status == 403 and reason in _RATE_REASONS):
        retry_after = parse_retry_after(exc.resp.get("retry-after"))
        return Throttled(f"Gmail {status}: limite de requisições ({message})"[:400],
                         retry_after=retry_after)  # fmt: skip
    if status == 404:
        return GmailNotFound(f"Gmail 404: {message}"[:400])
    if status in (401, 403):
        return MailboxAuthError(f"Gmail {status}: {message}"[:400])
    return MailboxError(f"Gmail {status}: {message}"[:400])


def _oauth_error(exc: Exception | None) -> str:
    if exc is None:
        return "erro desconhecido"
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    detail = args[1] if len(args) > 1 and isinstance(args[1], dict) else None
    if detail:
        return str(detail.get("error") or detail)[:200]
    return str(exc)[:200]
