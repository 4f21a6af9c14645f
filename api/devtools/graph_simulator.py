"""A local, in-memory server that speaks the part of Microsoft Graph (and the Microsoft identity
platform's token endpoint) Tratativa uses for Microsoft 365 mailboxes.

Wire format as Microsoft's: JSON over HTTP under `/v1.0`, Graph's error body
`{"error": {"code", "message", "innerError": {"date", "request-id"}}}`, delta query paging with
`@odata.nextLink` ($skiptoken) and a final `@odata.deltaLink` ($deltatoken), 410 Gone
(`SyncStateNotFound`) for a delta token the server no longer knows, 401
`InvalidAuthenticationToken` for an expired token, 429/503 with Retry-After when throttling,
`$value` answering a message's MIME, and OAuth errors as `{"error": "invalid_client",
"error_description": "AADSTS…", "error_codes": […]}`.

- `POST /{tenant}/oauth2/v2.0/token` (client_credentials).
- `GET /v1.0/users/{user}/mailFolders/{folder}/messages/delta`, `GET …/messages/{id}/$value`.
- `POST …/messages/{id}/createReply` (a draft with RE: subject, In-Reply-To/References,
  the thread's conversationId), `PATCH …/messages/{id}`, `POST …/messages/{id}/attachments`,
  `POST …/messages/{id}/send` (202).
- `POST /v1.0/subscriptions` (the validationToken handshake with the notification URL before
  answering 201, as Graph does), `PATCH`/`DELETE /v1.0/subscriptions/{id}`; new mail posts a
  change notification carrying the clientState; `lifecycle(address, event)` posts a lifecycle
  notification (missed, reauthorizationRequired, subscriptionRemoved).

Run: `python -m api.devtools.graph_simulator --port 8098` and point a graph mailbox at it with
`--api-base-url http://127.0.0.1:8098/v1.0 --login-base-url http://127.0.0.1:8098`.
Single process, bounded memory, not for production.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import email
import email.policy
import itertools
import json
import logging
import re
import secrets
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

log = logging.getLogger("graph_simulator")

PAGE_SIZE = 10  # Graph's default page of a messages delta round
_EXTENDED_FILTER = re.compile(
    r"singleValueExtendedProperties/any\(\s*(\w+)\s*:\s*\1/id eq '([^']+)' and \1/value eq "
    r"'([^']*)'\s*\)",
    re.IGNORECASE,
)
MAX_MESSAGES = 20_000
ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "ErrorAccessDenied",
    404: "ErrorItemNotFound",
    410: "SyncStateNotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass
class SimMail:
    id: str
    folder: str  # inbox | drafts | sentitems
    internet_message_id: str
    conversation_id: str
    received: dt.datetime
    raw: bytes | None = None  # inbound mail: its MIME
    subject: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    attachments: list[dict[str, Any]] = field(default_factory=list)
    is_draft: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # internetMessageHeaders (X- only)
    extended: dict[str, str] = field(default_factory=dict)  # singleValueExtendedProperties

    def resource(self) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.message",
            "id": self.id,
            "internetMessageId": f"<{self.internet_message_id}>",
            "conversationId": self.conversation_id,
            "receivedDateTime": _iso(self.received),
            "isDraft": self.is_draft,
            "subject": self.subject,
            "toRecipients": [{"emailAddress": {"address": a}} for a in self.to],
            "ccRecipients": [{"emailAddress": {"address": a}} for a in self.cc],
            "body": self.body or {"contentType": "text", "content": ""},
        }


@dataclass
class SimUser:
    address: str
    mails: dict[str, SimMail] = field(default_factory=dict)
    inbox_log: list[str] = field(default_factory=list)  # ids in arrival order (delta state)
    generation: int = 1  # bumped when delta tokens expire


@dataclass
class SimSubscription:
    id: str
    address: str
    resource: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expiration: dt.datetime


@dataclass
class Fault:
    path_contains: str
    status: int
    retry_after: str | None
    count: int


class GraphState:
    """Everything the simulator knows; tests may call its methods directly (thread-safe)."""

    def __init__(self, *, token_ttl: int = 3599, page_size: int = PAGE_SIZE) -> None:
        self.lock = threading.RLock()
        self.token_ttl = token_ttl
        self.page_size = page_size
        self.clients: dict[tuple[str, str], str] = {}  # (tenant, client_id) -> secret
        self.grants: dict[tuple[str, str], set[str]] = {}  # (tenant, client_id) -> mailboxes
        self.access_tokens: dict[str, tuple[tuple[str, str], float]] = {}
        self.users: dict[str, SimUser] = {}
        self.subscriptions: dict[str, SimSubscription] = {}
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, float]] = []  # (method, path, monotonic time)
        self.token_requests = 0
        self.sent: list[SimMail] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # attachment upload sessions
        self.outgoing: list[threading.Thread] = []
        self.notification_answers: list[int] = []
        self._ids = itertools.count(1)

    # --- setup -------------------------------------------------------------------------------
    def add_app(self, tenant: str, client_id: str, secret: str, mailboxes: Sequence[str]) -> None:
        with self.lock:
            self.clients[(tenant, client_id)] = secret
            self.grants[(tenant, client_id)] = {m.lower() for m in mailboxes}
            for address in mailboxes:
                self.users.setdefault(address.lower(), SimUser(address.lower()))

    def add_fault(
        self, path_contains: str, status: int, *, retry_after: str | None = None, count: int = 1
    ) -> None:
        with self.lock:
            self.faults.append(Fault(path_contains, status, retry_after, count))

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def expire_delta_tokens(self, address: str) -> None:
        """Every delta/skip token issued so far answers 410 Gone."""
        with self.lock:
            self.users[address.lower()].generation += 1

    # --- mail --------------------------------------------------------------------------------
    def _new_id(self) -> str:
        return "AAMk" + base64.urlsafe_b64encode(f"msg-{next(self._ids):08d}".encode()).decode()

    def deliver(self, address: str, raw: bytes) -> SimMail:
        with self.lock:
            user = self.users[address.lower()]
            parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
            own = _bare(parsed.get("Message-ID")) or f"{uuid.uuid4().hex}@sim.invalid"
            wanted = set(re.findall(r"<([^<>\s]+)>", f"{parsed.get('In-Reply-To', '')} "
                                                     f"{parsed.get('References', '')}"))  # fmt: skip
            conversation = next(
                (m.conversation_id for m in user.mails.values()
                 if m.internet_message_id in wanted),
                "AAQk" + uuid.uuid4().hex,
            )  # fmt: skip
            mail = SimMail(
                id=self._new_id(),
                folder="inbox",
                internet_message_id=own,
                conversation_id=conversation,
                received=dt.datetime.now(dt.UTC),
                raw=raw,
                subject=str(parsed.get("Subject", "")),
                to=[address.lower()],
            )
            user.mails[mail.id] = mail
            user.inbox_log.append(mail.id)
            if len(user.inbox_log) > MAX_MESSAGES:
                user.mails.pop(user.inbox_log.pop(0), None)
            subscriptions = [s for s in self.subscriptions.values() if s.address == user.address]
        for subscription in subscriptions:
            self._notify(
                subscription.notification_url,
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _iso(subscription.expiration),
                    "changeType": "created",
                    "resource": f"Users/{user.address}/Messages/{mail.id}",
                    "resourceData": {
                        "@odata.type": "#Microsoft.Graph.Message",
                        "@odata.id": f"Users/{user.address}/Messages/{mail.id}",
                        "id": mail.id,
                    },
                    "clientState": subscription.client_state,
                    "tenantId": "sim-tenant",
                },
            )
        return mail

    def lifecycle(self, address: str, event: str) -> None:
        """Post a lifecycle notification (missed, reauthorizationRequired, subscriptionRemoved)."""
        with self.lock:
            subscriptions = [s for s in self.subscriptions.values() if s.address == address.lower()]
            if event == "subscriptionRemoved":
                for subscription in subscriptions:
                    self.subscriptions.pop(subscription.id, None)
        for subscription in subscriptions:
            self._notify(
                subscription.lifecycle_url or subscription.notification_url,
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _iso(subscription.expiration),
                    "tenantId": "sim-tenant",
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                },
            )

    def _notify(self, url: str, item: dict[str, Any]) -> None:
        # Graph delivers notifications on its own schedule: each leaves from a thread.
        thread = threading.Thread(target=self._post, args=(url, item), daemon=True)
        with self.lock:
            self.outgoing.append(thread)
        thread.start()

    def _post(self, url: str, item: dict[str, Any]) -> None:
        try:
            response = httpx.post(url, json={"value": [item]}, timeout=10)
        except httpx.HTTPError as exc:
            log.warning("notification to %s failed: %s", url, exc)
            return
        with self.lock:
            self.notification_answers.append(response.status_code)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every notification sent so far has been answered (call it off the event
        loop that serves the receiving app: `await asyncio.to_thread(state.drain)`)."""
        with self.lock:
            threads, self.outgoing = self.outgoing, []
        for thread in threads:
            thread.join(timeout)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None


def graph_error(
    status: int, message: str, *, code: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(
        {
            "error": {
                "code": code or ERROR_CODES.get(status, "UnknownError"),
                "message": message,
                "innerError": {
                    "date": _iso(dt.datetime.now(dt.UTC)),
                    "request-id": str(uuid.uuid4()),
                    "client-request-id": str(uuid.uuid4()),
                },
            }
        },
        status_code=status,
        headers=headers,
    )


def _token_of(kind: str, generation: int, position: int) -> str:
    raw = json.dumps({"k": kind, "g": generation, "p": position}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(value: str) -> dict[str, Any] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def create_app(state: GraphState) -> Starlette:
    def authorize(request: Request) -> SimUser | Response:
        path = request.url.path
        with state.lock:
            state.requests.append((request.method, path, time.monotonic()))
        fault = state.take_fault(path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return graph_error(fault.status, "Simulated fault.", headers=headers)
        token = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        with state.lock:
            found = state.access_tokens.get(token)
            if found is None or found[1] < time.time():
                return graph_error(
                    401,
                    "Lifetime validation failed, the token is expired."
                    if found
                    else "Access token is empty.",
                )
            user_key = request.path_params.get("user")
            if user_key is None:
                return SimUser("")
            address = str(user_key).lower()
            if address not in state.grants.get(found[0], set()):
                return graph_error(403, "Access is denied. Check credentials and try again.")
            return state.users[address]

    async def token(request: Request) -> Response:
        tenant = request.path_params["tenant"]
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state.token_requests += 1
        fault = state.take_fault("/oauth2/")
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return JSONResponse({"error": "temporarily_unavailable"}, fault.status, headers)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_codes": [70003]}, status_code=400
            )
        key = (tenant, form.get("client_id", ""))
        with state.lock:
            if state.clients.get(key) != form.get("client_secret"):
                return JSONResponse(
                    {
                        "error": "invalid_client",
                        "error_description": "AADSTS7000215: Invalid client secret provided.",
                        "error_codes": [7000215],
                    },
                    status_code=401,
                )
            access = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
            state.access_tokens[access] = (key, time.time() + state.token_ttl)
        return JSONResponse(
            {
                "token_type": "Bearer",
                "expires_in": state.token_ttl,
                "ext_expires_in": state.token_ttl,
                "access_token": access,
            }
        )

    async def delta(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        if request.path_params["folder"].lower() not in ("inbox",):
            return graph_error(404, "The specified folder could not be found in the store.",
                               code="ErrorInvalidIdMalformed")  # fmt: skip
        params = request.query_params
        with state.lock:
            if "$deltatoken" in params or "$skiptoken" in params:
                data = _read_token(params.get("$deltatoken") or params.get("$skiptoken") or "")
                if data is None or data.get("g") != user.generation:
                    return graph_error(
                        410,
                        "The sync state generation is not found or is invalid.",
                        code="SyncStateNotFound",
                    )
                position = int(data["p"])
            else:
                position = 0
            ids = user.inbox_log[position : position + state.page_size]
            base = str(request.url.replace(query=""))
            select = params.get("$select")
            body: dict[str, Any] = {
                "@odata.context": f"{request.base_url}v1.0/$metadata#Collection(message)",
                "value": [_selected(user.mails[i].resource(), select) for i in ids
                          if i in user.mails],
            }  # fmt: skip
            after = position + len(ids)
            if after < len(user.inbox_log):
                body["@odata.nextLink"] = (
                    f"{base}?$skiptoken={_token_of('skip', user.generation, after)}"
                )
            else:
                body["@odata.deltaLink"] = (
                    f"{base}?$deltatoken={_token_of('delta', user.generation, after)}"
                )
        return JSONResponse(body)

    async def mime(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        with state.lock:
            mail = user.mails.get(request.path_params["id"])
            if mail is None or mail.raw is None:
                return graph_error(404, "The specified object was not found in the store.")
            return Response(mail.raw, media_type="text/plain")

    async def create_draft(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body() or b"{}")
            headers = _headers(body)
        except ValueError as exc:
            return graph_error(400, str(exc) or "Unable to read JSON request payload.")
        with state.lock:
            draft = SimMail(
                id=state._new_id(),
                folder="drafts",
                internet_message_id=f"{uuid.uuid4().hex.upper()}@sim.prod.outlook.com",
                conversation_id="AAQk" + uuid.uuid4().hex,
                received=dt.datetime.now(dt.UTC),
                subject=str(body.get("subject") or ""),
                is_draft=True,
                headers=headers,
            )
            user.mails[draft.id] = draft
            return JSONResponse(draft.resource(), status_code=201)

    async def create_reply(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body() or b"{}")
            headers = _headers(body.get("message") or {})
        except ValueError as exc:
            return graph_error(400, str(exc) or "Unable to read JSON request payload.")
        with state.lock:
            original = user.mails.get(request.path_params["id"])
            if original is None:
                return graph_error(404, "The specified object was not found in the store.")
            parsed = email.message_from_bytes(original.raw or b"", policy=email.policy.compat32)
            sender = email.utils.parseaddr(str(parsed.get("Reply-To") or parsed.get("From")))[1]
            references = re.findall(r"<([^<>\s]+)>", str(parsed.get("References", "")))
            draft = SimMail(
                id=state._new_id(),
                folder="drafts",
                internet_message_id=f"{uuid.uuid4().hex.upper()}@sim.prod.outlook.com",
                conversation_id=original.conversation_id,
                received=dt.datetime.now(dt.UTC),
                subject=f"RE: {original.subject}",
                to=[sender.lower()] if sender else [],
                in_reply_to=original.internet_message_id,
                references=[*references, original.internet_message_id],
                is_draft=True,
                headers=headers,
            )
            user.mails[draft.id] = draft
            return JSONResponse(draft.resource(), status_code=201)

    async def update_message(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body())
        except ValueError:
            return graph_error(400, "Unable to read JSON request payload.")
        with state.lock:
            mail = user.mails.get(request.path_params["id"])
            if mail is None:
                return graph_error(404, "The specified object was not found in the store.")
            if "subject" in body:
                mail.subject = str(body["subject"])
            if "body" in body:
                mail.body = dict(body["body"])
            if "toRecipients" in body:
                mail.to = [r["emailAddress"]["address"].lower() for r in body["toRecipients"]]
            if "ccRecipients" in body:
                mail.cc = [r["emailAddress"]["address"].lower() for r in body["ccRecipients"]]
            for prop in body.get("singleValueExtendedProperties") or []:
                mail.extended[str(prop["id"]).lower()] = str(prop["value"])
            return JSONResponse(mail.resource())

    async def list_messages(request: Request) -> Response:
        """GET …/messages with the one $filter Tratativa uses: an extended property's value."""
        user = authorize(request)
        if isinstance(user, Response):
            return user
        wanted = _EXTENDED_FILTER.fullmatch(request.query_params.get("$filter", "").strip())
        if wanted is None:
            return graph_error(400, "Only singleValueExtendedProperties filters are simulated.")
        prop, value = wanted.group(2).lower(), wanted.group(3)
        with state.lock:
            found = [m for m in user.mails.values() if m.extended.get(prop) == value]
            select = request.query_params.get("$select")
            return JSONResponse({"value": [_selected(m.resource(), select) for m in found]})

    async def delete_message(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        with state.lock:
            if user.mails.pop(request.path_params["id"], None) is None:
                return graph_error(404, "The specified object was not found in the store.")
        return Response(status_code=204)

    async def add_attachment(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        body = json.loads(await request.body())
        if body.get("@odata.type") != "#microsoft.graph.fileAttachment":
            return graph_error(400, "Invalid attachment type.")
        try:
            data = base64.b64decode(body["contentBytes"], validate=True)
        except (KeyError, ValueError):
            return graph_error(400, "Invalid contentBytes.")
        if len(data) > 3 * 1024 * 1024:
            return graph_error(413, "The maximum request length supported is 4MB.",
                               code="RequestBodyTooLarge")  # fmt: skip
        with state.lock:
            mail = user.mails.get(request.path_params["id"])
            if mail is None or not mail.is_draft:
                return graph_error(404, "The specified object was not found in the store.")
            attachment = {
                "id": uuid.uuid4().hex,
                "name": body.get("name"),
                "contentType": body.get("contentType"),
                "size": len(data),
                "data": data,
            }
            mail.attachments.append(attachment)
        return JSONResponse({k: v for k, v in attachment.items() if k != "data"}, status_code=201)

    async def create_upload_session(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        body = json.loads(await request.body())
        item = body.get("AttachmentItem") or {}
        if item.get("attachmentType") != "file" or not isinstance(item.get("size"), int):
            return graph_error(400, "Invalid AttachmentItem.")
        with state.lock:
            mail = user.mails.get(request.path_params["id"])
            if mail is None or not mail.is_draft:
                return graph_error(404, "The specified object was not found in the store.")
            session_id = uuid.uuid4().hex
            state.uploads[session_id] = {
                "mail": mail,
                "name": item.get("name"),
                "contentType": item.get("contentType"),
                "size": item["size"],
                "data": bytearray(),
            }
        expires = _iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
        return JSONResponse(
            {
                "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.uploadSession",
                "uploadUrl": f"{request.base_url}upload/{session_id}?authtoken={uuid.uuid4().hex}",
                "expirationDateTime": expires,
                "nextExpectedRanges": ["0-"],
            },
            status_code=201,
        )

    async def upload_chunk(request: Request) -> Response:
        """PUT to an upload URL: pre-authenticated, so an Authorization header is refused."""
        with state.lock:
            state.requests.append((request.method, request.url.path, time.monotonic()))
        if request.headers.get("authorization"):
            return graph_error(401, "An Authorization header must not be sent to uploadUrl.")
        found = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("content-range", ""))
        data = await request.body()
        with state.lock:
            upload = state.uploads.get(request.path_params["session"])
            if upload is None:
                return graph_error(404, "The upload session was not found.")
            if found is None or int(found.group(3)) != upload["size"]:
                return graph_error(400, "Invalid Content-Range.")
            start, end = int(found.group(1)), int(found.group(2))
            if (
                start != len(upload["data"])
                or end - start + 1 != len(data)
                or len(data) > 4 * 1024 * 1024
            ):
                return graph_error(416, "The Content-Range is not the next expected range.",
                                   code="InvalidRange")  # fmt: skip
            upload["data"].extend(data)
            if len(upload["data"]) < upload["size"]:
                return JSONResponse(
                    {
                        "expirationDateTime": _iso(dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)),
                        "nextExpectedRanges": [f"{len(upload['data'])}-"],
                    }
                )
            del state.uploads[request.path_params["session"]]
            upload["mail"].attachments.append(
                {
                    "id": uuid.uuid4().hex,
                    "name": upload["name"],
                    "contentType": upload["contentType"],
                    "size": upload["size"],
                    "data": bytes(upload["data"]),
                }
            )
        return Response(status_code=201)

    async def send(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        with state.lock:
            mail = user.mails.get(request.path_params["id"])
            if mail is None or not mail.is_draft:
                return graph_error(404, "The specified object was not found in the store.")
            if not mail.to:
                return graph_error(400, "At least one recipient is not valid.",
                                   code="ErrorInvalidRecipients")  # fmt: skip
            mail.is_draft = False
            mail.folder = "sentitems"
            state.sent.append(mail)
        return Response(status_code=202)

    async def create_subscription(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body())
        except ValueError:
            return graph_error(400, "Unable to read JSON request payload.")
        resource = str(body.get("resource") or "")
        found = re.match(r"users/([^/]+)/mailFolders\('?([^')]+)'?\)/messages$", resource, re.I)
        if not found or body.get("changeType") != "created":
            return graph_error(400, "Invalid resource or changeType.", code="InvalidRequest")
        address = found.group(1).lower()
        with state.lock:
            token_key = state.access_tokens.get(
                request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            )
            if token_key is None or address not in state.grants.get(token_key[0], set()):
                return graph_error(403, "Access is denied.", code="ExtensionError")
        try:
            expiration = dt.datetime.fromisoformat(str(body["expirationDateTime"]))
        except (KeyError, ValueError):
            return graph_error(400, "expirationDateTime is invalid.")
        if expiration > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10080):
            return graph_error(400, "Subscription expiration can only be 10080 minutes in "
                               "the future.", code="InvalidRequest")  # fmt: skip
        urls = {str(body.get("notificationUrl") or "")}
        if body.get("lifecycleNotificationUrl"):
            urls.add(str(body["lifecycleNotificationUrl"]))
        for url in urls:
            # Graph validates each endpoint before creating the subscription.
            validation = secrets.token_urlsafe(24)
            try:
                async with httpx.AsyncClient(timeout=10) as client:
                    answer = await client.post(
                        url, params={"validationToken": validation},
                        headers={"Content-Type": "text/plain; charset=utf-8"},
                    )  # fmt: skip
            except httpx.HTTPError as exc:
                return graph_error(400, f"Subscription validation request failed. {exc}",
                                   code="ValidationError")  # fmt: skip
            if answer.status_code != 200 or answer.text != validation:
                return graph_error(
                    400,
                    "Subscription validation request failed. Response must exactly match "
                    "validationToken query parameter.",
                    code="ValidationError",
                )
        subscription = SimSubscription(
            id=str(uuid.uuid4()),
            address=address,
            resource=resource,
            notification_url=str(body["notificationUrl"]),
            lifecycle_url=body.get("lifecycleNotificationUrl"),
            client_state=body.get("clientState"),
            expiration=expiration,
        )
        with state.lock:
            state.subscriptions[subscription.id] = subscription
        return JSONResponse(_subscription(subscription), status_code=201)

    async def update_subscription(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        body = json.loads(await request.body())
        with state.lock:
            subscription = state.subscriptions.get(request.path_params["id"])
            if subscription is None:
                return graph_error(404, "The object was not found.", code="ResourceNotFound")
            subscription.expiration = dt.datetime.fromisoformat(str(body["expirationDateTime"]))
            return JSONResponse(_subscription(subscription))

    async def delete_subscription(request: Request) -> Response:
        user = authorize(request)
        if isinstance(user, Response):
            return user
        with state.lock:
            if state.subscriptions.pop(request.path_params["id"], None) is None:
                return graph_error(404, "The object was not found.", code="ResourceNotFound")
        return Response(status_code=204)

    messages = "/v1.0/users/{user}/messages/{id}"
    return Starlette(
        routes=[
            Route("/{tenant}/oauth2/v2.0/token", token, methods=["POST"]),
            Route("/v1.0/users/{user}/mailFolders/{folder}/messages/delta", delta),
            Route("/v1.0/users/{user}/messages", create_draft, methods=["POST"]),
            Route("/v1.0/users/{user}/messages", list_messages, methods=["GET"]),
            Route(messages, delete_message, methods=["DELETE"]),
            Route(messages + "/$value", mime),
            Route(messages + "/createReply", create_reply, methods=["POST"]),
            Route(messages + "/attachments", add_attachment, methods=["POST"]),
            Route(
                messages + "/attachments/createUploadSession",
                create_upload_session,
                methods=["POST"],
            ),
            Route("/upload/{session}", upload_chunk, methods=["PUT"]),
            Route(messages + "/send", send, methods=["POST"]),
            Route(messages, update_message, methods=["PATCH"]),
            Route("/v1.0/subscriptions", create_subscription, methods=["POST"]),
            Route("/v1.0/subscriptions/{id}", update_subscription, methods=["PATCH"]),
            Route("/v1.0/subscriptions/{id}", delete_subscription, methods=["DELETE"]),
        ]
    )


def _headers(message: dict[str, Any]) -> dict[str, str]:
    """internetMessageHeaders as Graph accepts them: custom X- headers only."""
    found: dict[str, str] = {}
    for item in message.get("internetMessageHeaders") or []:
        name = str(item.get("name") or "")
        if not name.lower().startswith("x-"):
            raise ValueError(
                "The internet message header name '" + name + "' should start with 'x-' or 'X-'."
            )
        found[name] = str(item.get("value") or "")
    return found


def _subscription(subscription: SimSubscription) -> dict[str, Any]:
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#subscriptions/$entity",
        "id": subscription.id,
        "resource": subscription.resource,
        "applicationId": "sim-app",
        "changeType": "created",
        "clientState": subscription.client_state,
        "notificationUrl": subscription.notification_url,
        "lifecycleNotificationUrl": subscription.lifecycle_url,
        "expirationDateTime": _iso(subscription.expiration),
        "creatorId": "sim-creator",
    }


def _selected(resource: dict[str, Any], select: str | None) -> dict[str, Any]:
    if not select:
        return resource
    keep = {part.strip() for part in select.split(",")} | {"id", "@odata.type"}
    return {k: v for k, v in resource.items() if k in keep}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _bare(value: object) -> str | None:
    found = re.search(r"<([^<>\s]+)>", str(value or ""))
    return found.group(1) if found else None


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Microsoft-Graph-compatible mail server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8098)
    parser.add_argument("--tenant", default="sim-tenant")
    parser.add_argument("--client-id", default="sim-client")
    parser.add_argument("--client-secret", default="sim-secret")
    parser.add_argument("--mailbox", action="append", default=[], help="address (repeatable)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    state = GraphState()
    state.add_app(args.tenant, args.client_id, args.client_secret, args.mailbox or [])
    log.info("mailboxes: %s", ", ".join(quote(m) for m in args.mailbox) or "none")
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
