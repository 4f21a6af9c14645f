"""Microsoft Graph connector (httpx with typed pydantic models of the few Graph resources used).

Why not msgraph-sdk: it authenticates through azure-identity, whose authority must be https
(login.microsoftonline.com or a validated host), so it cannot be pointed at a local server that
speaks the same wire format; and it brings kiota's whole runtime for five endpoints. The REST
surface used here is small and stable (v1.0), so httpx + pydantic models stay readable and are
tested against the simulator (api/devtools/graph_simulator.py).

- Credentials: OAuth 2.0 client credentials (tenant and client id in config, the secret named in
  `credentials_env`), token cached until a minute before it expires; a 401 re-acquires once.
- Sync: delta query on the folder; `@odata.nextLink` pages are followed and saved as the cursor
  as they go (a crash resumes mid-round), the final `@odata.deltaLink` is the cursor for next
  time. 410 Gone (or a syncStateNotFound/resyncRequired error) → a fresh delta round from the
  start, with no duplicates: each mail's MIME (`/messages/{id}/$value`) goes through the shared
  pipeline, which recognises Message-IDs it has seen through any connector.
- Subscriptions (config `notification_url`): created on `created` messages of the folder with a
  random clientState (only its hash is stored), renewed (PATCH) before expiry; the endpoint
  (api/channels/mailboxes/routes.py) answers the validationToken handshake, checks clientState
  on every notification, syncs on `missed`, renews on `reauthorizationRequired`, re-creates on
  `subscriptionRemoved`.
- Replies: `createReply` on the message we answer (Outlook threads it: In-Reply-To, References,
  conversationId), then PATCH of subject (with the case reference) and body, attachments, `send`.
- 429/503/504: `Throttled` with Retry-After (the runner and the outbox wait at least that long).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import secrets
import time
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.channels.email.composer import Firm, compose_body, make_message_id
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
from api.channels.mailboxes.models import MailboxProvider
from api.channels.mailboxes.service import credential, do_save_cursor, do_save_push, secret_hash
from api.config import get_settings
from api.db import get_sessionmaker, unit_of_work, utcnow
from api.outbox.senders import Envelope, SendResult

log = logging.getLogger(__name__)

GRAPH_BASE_URL = "https://graph.microsoft.com/v1.0"
LOGIN_BASE_URL = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
HTTP_TIMEOUT = 60.0
# Graph's limit for mail subscriptions is 10,080 minutes (7 days); renew a day ahead.
SUBSCRIPTION_LIFETIME = dt.timedelta(days=2)
SUBSCRIPTION_RENEW_BEFORE = dt.timedelta(hours=12)
# Graph takes attachments inline (base64 in JSON) up to 3 MB; larger ones need an upload session.
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024
UPLOAD_CHUNK = 10 * 320 * 1024  # 3.2 MiB: a multiple of 320 KiB, under the 4 MiB per request
# A named extended property (our own GUID namespace) that tags each draft with its outbox row.
OUTBOX_PROPERTY = "String {5b0d8c53-6a47-4f0e-9d1c-7f1f2b9e3a10} Name TratativaOutboxId"
_EXPIRED_CODES = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateNotFound"})


class GraphToken(BaseModel):
    access_token: str
    expires_in: int = 3599
    token_type: str = "Bearer"


class GraphMessageRef(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    removed: dict[str, Any] | None = Field(default=None, alias="@removed")
    internet_message_id: str | None = Field(default=None, alias="internetMessageId")
    conversation_id: str | None = Field(default=None, alias="conversationId")
    received: dt.datetime | None = Field(default=None, alias="receivedDateTime")
    is_draft: bool | None = Field(default=None, alias="isDraft")


class DeltaPage(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    value: list[GraphMessageRef] = []
    next_link: str | None = Field(default=None, alias="@odata.nextLink")
    delta_link: str | None = Field(default=None, alias="@odata.deltaLink")


class GraphSubscription(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    expiration: dt.datetime = Field(alias="expirationDateTime")


class GraphDraft(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    id: str
    internet_message_id: str | None = Field(default=None, alias="internetMessageId")


class GraphConnector:
    provider = MailboxProvider.GRAPH

    def __init__(
        self,
        *,
        maker: async_sessionmaker[AsyncSession] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._maker = maker
        self._transport = transport
        self._tokens: dict[int, tuple[str, float]] = {}
        self._clients: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    @property
    def maker(self) -> async_sessionmaker[AsyncSession]:
        return self._maker or get_sessionmaker()

    def _client(self) -> httpx.AsyncClient:
        """One pooled client per event loop (a client per request pays TLS setup every time)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            for old in [key for key in self._clients if key.is_closed()]:
                self._clients.pop(old, None)
            client = httpx.AsyncClient(
                timeout=HTTP_TIMEOUT,
                transport=self._transport,
                limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            )
            self._clients[loop] = client
        return client

    def _base(self, box: MailboxRef) -> str:
        return str(box.config.get("api_base_url") or GRAPH_BASE_URL).rstrip("/")

    def _user(self, box: MailboxRef) -> str:
        return quote(str(box.config.get("user_id") or box.address), safe="@")

    # --- credentials -------------------------------------------------------------------------
    async def token(self, box: MailboxRef, *, force: bool = False) -> str:
        lock = self._locks.setdefault(box.id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(box.id)
            if cached is not None and cached[1] > time.monotonic() + 60 and not force:
                return cached[0]
            secret = credential(box.credentials_env, "client_secret")
            if not secret:
                raise MailboxAuthError(
                    f"variável {box.credentials_env.get('client_secret')} (client secret) vazia"
                )
            login = str(box.config.get("login_base_url") or LOGIN_BASE_URL).rstrip("/")
            url = f"{login}/{quote(str(box.config['tenant']))}/oauth2/v2.0/token"
            try:
                response = await self._client().post(
                    url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": str(box.config["client_id"]),
                        "client_secret": secret,
                        "scope": SCOPE,
                    },
                )
            except httpx.HTTPError as exc:
                raise MailboxError(f"Microsoft login inacessível: {type(exc).__name__}") from exc
            if response.status_code in (429, 503):
                raise Throttled(
                    f"Microsoft login {response.status_code}",
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                )
            if response.status_code != 200:
                raise MailboxAuthError(
                    f"Microsoft recusou as credenciais ({response.status_code}): "
                    f"{_oauth_error(response)}"
                )
            token = GraphToken.model_validate(response.json())
            self._tokens[box.id] = (token.access_token, time.monotonic() + token.expires_in)
            return token.access_token

    # --- calls -------------------------------------------------------------------------------
    async def request(
        self,
        box: MailboxRef,
        method: str,
        url: str,
        *,
        json: Any = None,
    ) -> httpx.Response:
        if not url.startswith("http"):
            url = self._base(box) + url
        for attempt in range(2):
            token = await self.token(box, force=attempt > 0)
            try:
                response = await self._client().request(
                    method, url, json=json, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise MailboxError(f"Graph inacessível: {type(exc).__name__}: {exc}") from exc
            if response.status_code == 401 and attempt == 0:
                self._tokens.pop(box.id, None)
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response
        raise MailboxAuthError("Graph recusou o token renovado")

    # --- sync --------------------------------------------------------------------------------
    def _delta_start(self, box: MailboxRef) -> str:
        folder = quote(str(box.config.get("folder") or "inbox"))
        return (
            f"{self._base(box)}/users/{self._user(box)}/mailFolders/{folder}/messages/delta"
            "?$select=id,internetMessageId,conversationId,receivedDateTime,isDraft"
        )

    async def sync(
        self, box: MailboxRef, *, last_synced_at: dt.datetime | None = None
    ) -> SyncStats:
        stats = SyncStats()
        if box.cursor:
            try:
                stats.cursor = await self._delta(box, box.cursor, stats)
                return stats
            except CursorExpired:
                log.warning("mailbox %s: delta token expired; fresh sync", box.name)
                stats.full_resync = True
        stats.cursor = await self._delta(box, self._delta_start(box), stats)
        return stats

    async def _delta(self, box: MailboxRef, url: str, stats: SyncStats) -> str:
        while True:
            response = await self.request(box, "GET", url)
            page = DeltaPage.model_validate(response.json())
            for item in page.value:
                if item.removed is not None or item.is_draft:
                    continue
                await self._ingest(box, item, stats)
            if page.next_link:
                url = page.next_link
                async with unit_of_work(self.maker) as session:
                    await do_save_cursor(session, mailbox_id=box.id, cursor=url)
                continue
            if not page.delta_link:
                raise MailboxError("Graph delta sem @odata.deltaLink")
            async with unit_of_work(self.maker) as session:
                await do_save_cursor(session, mailbox_id=box.id, cursor=page.delta_link)
            return page.delta_link

    async def _ingest(self, box: MailboxRef, item: GraphMessageRef, stats: SyncStats) -> None:
        if await is_known(normalize_msgid(item.internet_message_id), maker=self.maker):
            stats.fetched += 1
            stats.duplicates += 1
            return
        url = f"/users/{self._user(box)}/messages/{quote(item.id)}/$value"
        try:
            response = await self.request(box, "GET", url)
        except GraphNotFound:
            return  # deleted since the delta listed it
        await ingest_raw(
            response.content,
            box=box,
            stats=stats,
            received_at=item.received,
            ref={"message_ref": item.id, "thread_id": item.conversation_id},
            maker=self.maker,
        )

    # --- subscriptions -----------------------------------------------------------------------
    async def renew_push(self, box: MailboxRef, *, force: bool = False) -> None:
        notification_url = box.config.get("notification_url")
        if not notification_url:
            return
        now = utcnow()
        if (
            not force
            and box.push_id
            and box.push_expires_at is not None
            and box.push_expires_at > now + SUBSCRIPTION_RENEW_BEFORE
        ):
            return
        expires = (now + SUBSCRIPTION_LIFETIME).isoformat().replace("+00:00", "Z")
        if box.push_id:
            try:
                response = await self.request(
                    box,
                    "PATCH",
                    f"/subscriptions/{quote(box.push_id)}",
                    json={"expirationDateTime": expires},
                )
            except GraphNotFound:
                pass  # gone (removed, expired): create a new one below
            else:
                renewed = GraphSubscription.model_validate(response.json())
                async with unit_of_work(self.maker) as session:
                    await do_save_push(
                        session, mailbox_id=box.id, push_id=renewed.id,
                        expires_at=renewed.expiration, keep_secret=True,
                    )  # fmt: skip
                return
        client_state = secrets.token_urlsafe(32)
        folder = str(box.config.get("folder") or "inbox")
        response = await self.request(
            box,
            "POST",
            "/subscriptions",
            json={
                "changeType": "created",
                "notificationUrl": notification_url,
                "lifecycleNotificationUrl": notification_url,
                "resource": f"users/{box.config.get('user_id') or box.address}"
                f"/mailFolders('{folder}')/messages",
                "expirationDateTime": expires,
                "clientState": client_state,
            },
        )
        created = GraphSubscription.model_validate(response.json())
        async with unit_of_work(self.maker) as session:
            await do_save_push(
                session,
                mailbox_id=box.id,
                push_id=created.id,
                expires_at=created.expiration,
                secret_hash_value=secret_hash(client_state),
            )

    # --- send --------------------------------------------------------------------------------
    async def send(self, box: MailboxRef, envelope: Envelope) -> SendResult:
        """A reply (createReply on the mail we answer, so Outlook threads it) or, for mail that
        answers nothing read through this mailbox, a new message; then subject, body,
        attachments and send."""
        mailbox_ref = envelope.meta.get("mailbox") or {}
        ref = mailbox_ref.get("message_ref") if mailbox_ref.get("mailbox_id") == box.id else None
        user = self._user(box)
        tag = make_message_id(
            message_id=envelope.message_id,
            conversation_id=envelope.conversation_id,
            secret=get_settings().secret_key.get_secret_value(),
            domain=box.address.rsplit("@", 1)[-1],
        )
        # Exactly once: each draft is tagged with an id that is the same on every retry of the
        # outbox row; a retry first looks for it. Sent → record it, don't send again; a draft
        # left by a crash → deleted and made again (its attachments may be half added).
        for found in await self._tagged(box, tag):
            if not found.is_draft:
                log.info("mailbox %s: message %s was already sent", box.name, envelope.message_id)
                return SendResult(provider_id=normalize_msgid(found.internet_message_id) or tag)
            await self.request(box, "DELETE", f"/users/{user}/messages/{quote(found.id)}")
        headers = []
        if str(envelope.meta.get("author_kind") or "bot") != "analyst":
            # Graph only takes X- headers (no Auto-Submitted): Exchange's own way to keep
            # auto-responders from answering automatic mail.
            headers = [{"name": "X-Auto-Response-Suppress", "value": "All"}]
        if ref:
            draft_response = await self.request(
                box,
                "POST",
                f"/users/{user}/messages/{quote(str(ref))}/createReply",
                json={"message": {"internetMessageHeaders": headers}} if headers else {},
            )
        else:
            draft_response = await self.request(
                box,
                "POST",
                f"/users/{user}/messages",
                json={"subject": envelope.subject or "", "internetMessageHeaders": headers}
                if headers
                else {"subject": envelope.subject or ""},
            )
        draft = GraphDraft.model_validate(draft_response.json())
        firm = Firm.from_settings(get_settings())
        body = compose_body([envelope.text], envelope.meta, firm)
        patch: dict[str, Any] = {
            "body": {"contentType": "text", "content": body},
            "toRecipients": [{"emailAddress": {"address": envelope.to}}],
            "singleValueExtendedProperties": [{"id": OUTBOX_PROPERTY, "value": tag}],
        }
        if envelope.subject:
            patch["subject"] = " ".join(envelope.subject.split())
        cc = [str(a) for a in envelope.meta.get("cc") or [] if a]
        if cc:
            patch["ccRecipients"] = [{"emailAddress": {"address": a}} for a in cc]
        draft_url = f"/users/{user}/messages/{quote(draft.id)}"
        await self.request(box, "PATCH", draft_url, json=patch)
        for data, filename, content_type in load_attachments(envelope.attachments):
            if len(data) > INLINE_ATTACHMENT_LIMIT:
                await self._upload(box, draft_url, data, filename, content_type)
                continue
            await self.request(
                box,
                "POST",
                draft_url + "/attachments",
                json={
                    "@odata.type": "#microsoft.graph.fileAttachment",
                    "name": filename,
                    "contentType": content_type,
                    "contentBytes": base64.b64encode(data).decode(),
                },
            )
        await self.request(box, "POST", draft_url + "/send")
        return SendResult(provider_id=normalize_msgid(draft.internet_message_id) or tag)

    async def _upload(
        self, box: MailboxRef, draft_url: str, data: bytes, filename: str, content_type: str
    ) -> None:
        """An attachment above 3 MB goes through an upload session, in chunks (multiples of
        320 KiB) PUT to the session's pre-authenticated URL — which must not get our token."""
        response = await self.request(
            box,
            "POST",
            draft_url + "/attachments/createUploadSession",
            json={
                "AttachmentItem": {
                    "attachmentType": "file",
                    "name": filename,
                    "size": len(data),
                    "contentType": content_type,
                }
            },
        )
        upload_url = str(response.json()["uploadUrl"])
        start = 0
        while start < len(data):
            chunk = data[start : start + UPLOAD_CHUNK]
            end = start + len(chunk) - 1
            try:
                answer = await self._client().put(
                    upload_url,
                    content=chunk,
                    headers={
                        "Content-Range": f"bytes {start}-{end}/{len(data)}",
                        "Content-Type": "application/octet-stream",
                    },
                )
            except httpx.HTTPError as exc:
                raise MailboxError(f"envio do anexo interrompido: {type(exc).__name__}") from exc
            if answer.status_code >= 400:
                raise _error(answer)
            start = end + 1

    async def _tagged(self, box: MailboxRef, tag: str) -> list[GraphMessageRef]:
        """Messages of the mailbox (any folder) carrying our outbox tag."""
        query = (
            f"singleValueExtendedProperties/any(ep: ep/id eq '{OUTBOX_PROPERTY}' "
            f"and ep/value eq '{tag}')"
        )
        response = await self.request(
            box,
            "GET",
            f"{self._base(box)}/users/{self._user(box)}/messages?"
            + urlencode({"$filter": query, "$select": "id,isDraft,internetMessageId"}),
        )
        return DeltaPage.model_validate(response.json()).value


class GraphNotFound(MailboxError):
    code = "graph_not_found"


def _error(response: httpx.Response) -> MailboxError:
    status = response.status_code
    code, message = "", ""
    try:
        detail = response.json().get("error") or {}
        code = str(detail.get("code") or "")
        message = str(detail.get("message") or "")
    except (ValueError, AttributeError):
        message = response.text[:200]
    text = f"Graph {status} {code}: {message}"[:400]
    if status in (429, 503, 504):
        return Throttled(text, retry_after=parse_retry_after(response.headers.get("retry-after")))
    if status == 410 or code in _EXPIRED_CODES:
        return CursorExpired(text)
    if status == 404:
        return GraphNotFound(text)
    if status in (401, 403):
        return MailboxAuthError(text)
    return MailboxError(text, permanent=400 <= status < 500)


def _oauth_error(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    return str(body.get("error_description") or body.get("error") or body)[:200]
