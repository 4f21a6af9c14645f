"""A local, in-memory server that speaks the part of the Gmail API (and Google's OAuth token
endpoint) Tratativa uses, so the real google-api-python-client / google-auth run against it.

Wire format as Google's: JSON over HTTP, `gmail/v1/users/{userId}/…` paths, Google's error body
`{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}`, paging
with `pageToken`/`nextPageToken`, history ids that only grow, 404 from `history.list` when the
start id is older than the history kept, 401 for a bad or expired access token, OAuth errors
`{"error": "invalid_grant", "error_description": …}`. Messages are stored raw (RFC 5322) and
served with `format=raw` (base64url).

- `POST /token`: grant_type=refresh_token; with `rotate_refresh_tokens` every refresh answers a
  new refresh token and retires the old one (what Google does for some clients and policies).
- `GET …/profile`, `GET …/messages` (labelIds, pageToken, maxResults), `GET …/messages/{id}`,
  `POST …/messages/send` (raw, threadId; kept with label SENT), `GET …/history`
  (startHistoryId, labelId, historyTypes, pageToken), `POST …/watch`, `POST …/stop`.
- Watches push a Pub/Sub push request (`{"message": {"data": base64({"emailAddress",
  "historyId"}), "messageId", "publishTime"}, "subscription"}`) to `push_url` on new mail; with
  `push_service_account`/`push_audience` set, as an authenticated push (Authorization: Bearer
  <RS256 OIDC token>), the signing certificate served at `GET /oauth2/v1/certs` like Google's.
- Faults: `add_fault(path_contains, status, retry_after=…, count=…)` answers the next matching
  calls with that status (429/503 carry Retry-After) — or POST `/_sim/faults`.
- Holds (tests): `hold(path_contains, address=…)` keeps the next matching call waiting until the
  returned `Hold` is released; its `arrived` event tells that the call is being held, so a test
  can act while a client is known to be in the middle of a request.

Run: `python -m api.devtools.gmail_simulator --port 8097` and point a gmail mailbox at it with
`--api-base-url http://127.0.0.1:8097/ --token-uri http://127.0.0.1:8097/token`.
Single process, bounded memory, not for production.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import email
import email.policy
import itertools
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("gmail_simulator")

MAX_MESSAGES = 20_000
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
MAX_PAGE = 500
DEFAULT_PAGE = 100
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
REASONS = {
    400: "invalidArgument",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}


@dataclass
class SimMessage:
    id: str
    thread_id: str
    labels: list[str]
    raw: bytes
    internal_date_ms: int
    history_id: int
    message_id_header: str | None


@dataclass
class SimUser:
    address: str
    messages: dict[str, SimMessage] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # oldest first
    history: list[dict[str, Any]] = field(default_factory=list)
    min_history_id: int = 0
    watch_topic: str | None = None
    watch_expiration_ms: int | None = None


@dataclass
class Fault:
    path_contains: str
    status: int
    retry_after: str | None
    count: int


@dataclass
class Hold:
    """The next `count` calls whose path contains `path_contains` (made with an access token of
    `address`, if given) wait until `release()` (or `timeout` seconds, so a test that forgets
    to release never wedges the server); `arrived` is set when the first of them is held."""

    path_contains: str
    address: str | None = None
    count: int = 1
    timeout: float = 30.0
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


class GmailState:
    """Everything the simulator knows; tests may call its methods directly (thread-safe)."""

    def __init__(self, *, rotate_refresh_tokens: bool = True, token_ttl: int = 3600) -> None:
        self.lock = threading.RLock()
        self.rotate_refresh_tokens = rotate_refresh_tokens
        self.token_ttl = token_ttl
        self.clients: dict[str, str] = {}  # client_id -> client_secret
        # service account e-mail -> (key id, certificate PEM, domain it may act for)
        self.service_accounts: dict[str, tuple[str, str, str]] = {}
        self.refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (client_id, address)
        self.access_tokens: dict[str, tuple[str, float]] = {}  # token -> (address, expiry)
        self.users: dict[str, SimUser] = {}
        self.faults: list[Fault] = []
        self.holds: list[Hold] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API call
        self.token_requests = 0
        self.raw_downloads = 0  # messages.get with format=raw
        self.push_url: str | None = None
        # Push with authentication: an OIDC token for this service account and audience,
        # signed with the simulator's key (its certificate at GET /oauth2/v1/certs).
        self.push_service_account: str | None = None
        self.push_audience: str | None = None
        self._signing: tuple[str, bytes, str] | None = None  # (kid, private PEM, cert PEM)
        self.outgoing: list[threading.Thread] = []
        self.pushes: list[int] = []  # status codes our push requests were answered with
        self._history = itertools.count(1000)
        self._ids = itertools.count(1)

    # --- setup -------------------------------------------------------------------------------
    def add_account(self, address: str, *, client_id: str, client_secret: str) -> str:
        """A mailbox and an OAuth client; returns a refresh token for it."""
        with self.lock:
            self.clients[client_id] = client_secret
            self.users.setdefault(address.lower(), SimUser(address.lower()))
            token = "1//" + secrets.token_urlsafe(24)
            self.refresh_tokens[token] = (client_id, address.lower())
            return token

    def add_service_account(self, domain: str, *, token_uri: str) -> dict[str, str]:
        """A service account with domain-wide delegation over `domain`; returns its JSON key."""
        kid, private, cert = make_signing_key()
        email = f"tratativa-{secrets.token_hex(4)}@sim-project.iam.gserviceaccount.com"
        with self.lock:
            self.service_accounts[email] = (kid, cert, domain.lower())
        return {
            "type": "service_account",
            "project_id": "sim-project",
            "private_key_id": kid,
            "private_key": private.decode(),
            "client_email": email,
            "client_id": str(secrets.randbits(64)),
            "token_uri": token_uri,
        }

    def add_fault(
        self, path_contains: str, status: int, *, retry_after: str | None = None, count: int = 1
    ) -> None:
        with self.lock:
            self.faults.append(Fault(path_contains, status, retry_after, count))

    def hold(
        self, path_contains: str, *, address: str | None = None, count: int = 1,
        timeout: float = 30.0,
    ) -> Hold:  # fmt: skip
        """Hold the next matching calls until the returned `Hold` is released (see `Hold`)."""
        hold = Hold(path_contains, address.lower() if address else None, count, timeout)
        with self.lock:
            self.holds.append(hold)
        return hold

    def expire_access_tokens(self) -> None:
        with self.lock:
            self.access_tokens.clear()

    def expire_history(self, address: str) -> None:
        """Forget the history kept so far: history.list from any older id answers 404."""
        with self.lock:
            user = self.users[address.lower()]
            user.min_history_id = self._next_history()
            user.history.clear()

    # --- mail --------------------------------------------------------------------------------
    def _next_history(self) -> int:
        return next(self._history)

    def deliver(
        self, address: str, raw: bytes, *, labels: Sequence[str] = ("INBOX", "UNREAD")
    ) -> SimMessage:
        """A mail arriving in the mailbox (threaded by In-Reply-To/References as Gmail does)."""
        with self.lock:
            user = self.users[address.lower()]
            message = self._store(user, raw, list(labels), thread_id=None)
        self._push(user, message.history_id)
        return message

    def _store(
        self, user: SimUser, raw: bytes, labels: list[str], thread_id: str | None
    ) -> SimMessage:
        parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
        own_id = _bare_id(parsed.get("Message-ID"))
        if thread_id is None:
            thread_id = self._thread_of(user, parsed)
        message_id = f"{next(self._ids):016x}"
        history_id = self._next_history()
        message = SimMessage(
            id=message_id,
            thread_id=thread_id or message_id,
            labels=labels,
            raw=raw,
            internal_date_ms=int(time.time() * 1000),
            history_id=history_id,
            message_id_header=own_id,
        )
        user.messages[message_id] = message
        user.order.append(message_id)
        if len(user.order) > MAX_MESSAGES:
            user.messages.pop(user.order.pop(0), None)
        summary = {"id": message_id, "threadId": message.thread_id, "labelIds": list(labels)}
        user.history.append(
            {
                "id": str(history_id),
                "messages": [{"id": message_id, "threadId": message.thread_id}],
                "messagesAdded": [{"message": summary}],
            }
        )
        return message

    def _thread_of(self, user: SimUser, parsed: email.message.Message) -> str | None:
        wanted = set(re.findall(r"<([^<>\s]+)>", f"{parsed.get('In-Reply-To', '')} "
                                                 f"{parsed.get('References', '')}"))  # fmt: skip
        for message in user.messages.values():
            if message.message_id_header and message.message_id_header in wanted:
                return message.thread_id
        return None

    def add_label(self, address: str, message_id: str, label: str) -> None:
        """A label added to a message (e.g. taken out of SPAM into INBOX): a labelsAdded record."""
        with self.lock:
            user = self.users[address.lower()]
            message = user.messages[message_id]
            if label not in message.labels:
                message.labels.append(label)
            if label == "INBOX" and "SPAM" in message.labels:
                message.labels.remove("SPAM")
            history_id = self._next_history()
            user.history.append(
                {
                    "id": str(history_id),
                    "messages": [{"id": message.id, "threadId": message.thread_id}],
                    "labelsAdded": [
                        {
                            "message": {
                                "id": message.id,
                                "threadId": message.thread_id,
                                "labelIds": list(message.labels),
                            },
                            "labelIds": [label],
                        }
                    ],
                }
            )
        self._push(user, history_id)

    def sent(self, address: str) -> list[SimMessage]:
        with self.lock:
            user = self.users[address.lower()]
            return [m for m in (user.messages[i] for i in user.order) if "SENT" in m.labels]

    def _push(self, user: SimUser, history_id: int) -> None:
        if not (self.push_url and user.watch_topic):
            return
        data = json.dumps({"emailAddress": user.address, "historyId": history_id})
        body = {
            "message": {
                "data": base64.b64encode(data.encode()).decode(),
                "messageId": str(secrets.randbits(48)),
                "publishTime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            },
            "subscription": "projects/sim/subscriptions/gmail-push",
        }
        headers: dict[str, str] = {}
        if self.push_service_account and self.push_audience:
            headers["Authorization"] = "Bearer " + self.oidc_token(
                audience=self.push_audience, email=self.push_service_account
            )
        # Pub/Sub delivers on its own schedule: the push leaves from a thread of its own.
        thread = threading.Thread(
            target=_post, args=(self.push_url, body, self.pushes, headers), daemon=True
        )
        with self.lock:
            self.outgoing.append(thread)
        thread.start()

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every push sent so far has been answered (call it off the event loop
        that serves the receiving app: `await asyncio.to_thread(state.drain)`)."""
        with self.lock:
            threads, self.outgoing = self.outgoing, []
        for thread in threads:
            thread.join(timeout)

    # --- OIDC (Pub/Sub push with authentication) ----------------------------------------------
    def signing_key(self) -> tuple[str, bytes, str]:
        """(key id, private key PEM, self-signed certificate PEM), made once."""
        with self.lock:
            if self._signing is None:
                self._signing = make_signing_key()
            return self._signing

    def rotate_signing_key(self) -> None:
        """Google rotates its signing keys: tokens from now on name a new key id."""
        with self.lock:
            self._signing = make_signing_key()

    def certs(self) -> dict[str, str]:
        kid, _, cert = self.signing_key()
        return {kid: cert}

    def oidc_token(
        self, *, audience: str, email: str, issuer: str = "https://accounts.google.com",
        private_pem: bytes | None = None, lifetime: int = 3600,
    ) -> str:  # fmt: skip
        """An ID token as Pub/Sub attaches to an authenticated push."""
        from google.auth import crypt, jwt

        kid, own_pem, _ = self.signing_key()
        signer = crypt.RSASigner.from_string(  # type: ignore[no-untyped-call]
            private_pem or own_pem, key_id=kid
        )
        now = int(time.time())
        payload = {
            "aud": audience,
            "iss": issuer,
            "sub": "1" + str(secrets.randbits(60)),
            "email": email,
            "email_verified": True,
            "azp": "1" + str(secrets.randbits(60)),
            "iat": now,
            "exp": now + lifetime,
        }
        encoded: bytes = jwt.encode(signer, payload)  # type: ignore[no-untyped-call]
        return encoded.decode()

    # --- request helpers ---------------------------------------------------------------------
    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path_contains in path and fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def take_hold(self, path: str, authorization: str) -> Hold | None:
        token = authorization.removeprefix("Bearer ").strip()
        with self.lock:
            found = self.access_tokens.get(token)
            address = found[0] if found is not None else None
            for hold in self.holds:
                if hold.path_contains in path and hold.address in (None, address):
                    hold.count -= 1
                    if hold.count <= 0:
                        self.holds.remove(hold)
                    return hold
        return None


def make_signing_key() -> tuple[str, bytes, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gmail-simulator")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return secrets.token_hex(20), private, cert.public_bytes(serialization.Encoding.PEM).decode()


def _post(
    url: str,
    body: dict[str, Any],
    answers: list[int] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:  # Pub/Sub would retry; the poll is the safety net anyway
        log.warning("push to %s failed: %s", url, exc)
        return
    if answers is not None:
        answers.append(response.status_code)


def _delegated_token(state: GmailState, assertion: str, audience: str) -> Response:
    """RFC 7523 JWT bearer grant of a service account acting as a user of its domain."""
    from google.auth import jwt

    def invalid(description: str) -> Response:
        return JSONResponse(
            {"error": "invalid_grant", "error_description": description}, status_code=400
        )

    try:
        unverified: dict[str, Any] = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
    except ValueError:
        return invalid("Invalid JWT.")
    with state.lock:
        known = state.service_accounts.get(str(unverified.get("iss")))
    if known is None:
        return invalid("Invalid JWT Signature.")
    kid, cert, domain = known
    try:
        claims: dict[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
            # google-auth addresses the assertion to Google's token endpoint whatever the
            # token_uri; Google accepts that audience, and so do we (or our own URL).
            assertion,
            certs={kid: cert},
            audience=[audience, GOOGLE_TOKEN_AUDIENCE],
        )
    except ValueError:
        return invalid("Invalid JWT Signature.")
    subject = str(claims.get("sub") or "").lower()
    if "gmail" not in str(claims.get("scope") or ""):
        return JSONResponse({"error": "invalid_scope"}, status_code=400)
    with state.lock:
        if not subject.endswith("@" + domain) or subject not in state.users:
            return JSONResponse(
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes requested.",
                },
                status_code=401,
            )
        access = "ya29.c." + secrets.token_urlsafe(32)
        state.access_tokens[access] = (subject, time.time() + state.token_ttl)
    return JSONResponse(
        {"access_token": access, "expires_in": state.token_ttl, "token_type": "Bearer"}
    )


def google_error(status: int, message: str, *, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [
                    {"message": message, "domain": "global", "reason": REASONS.get(status, "error")}
                ],
                "status": STATUS_NAMES.get(status, "UNKNOWN"),
            }
        },
        status_code=status,
        headers=headers,
    )


class _HoldRequests:
    """ASGI middleware: a call matching one of `state.holds` waits (off the server's event loop,
    so other calls are still answered) until the hold is released."""

    def __init__(self, app: ASGIApp, state: GmailState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.state.holds:
            authorization = Headers(scope=scope).get("authorization", "")
            hold = self.state.take_hold(str(scope["path"]), authorization)
            if hold is not None:
                hold.arrived.set()
                await asyncio.to_thread(hold.released.wait, hold.timeout)
        await self.app(scope, receive, send)


def create_app(state: GmailState) -> Starlette:
    def authorize(request: Request, user_id: str) -> SimUser | Response:
        path = request.url.path
        state.requests.append((request.method, path))
        fault = state.take_fault(path)
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else None
            return google_error(fault.status, "Simulated fault.", headers=headers)
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ").strip()
        with state.lock:
            found = state.access_tokens.get(token)
            if found is None or found[1] < time.time():
                return google_error(
                    401,
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
                )
            address = found[0]
            if user_id not in ("me", address):
                return google_error(403, "Delegation denied for " + address)
            return state.users[address]

    async def token(request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        state.token_requests += 1
        fault = state.take_fault("/token")
        if fault is not None:
            return JSONResponse({"error": "internal_failure"}, status_code=fault.status)
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return _delegated_token(state, form.get("assertion", ""), str(request.url))
        with state.lock:
            client_id = form.get("client_id", "")
            if state.clients.get(client_id) != form.get("client_secret"):
                return JSONResponse(
                    {"error": "invalid_client", "error_description": "Unauthorized"},
                    status_code=401,
                )
            if form.get("grant_type") != "refresh_token":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            grant = state.refresh_tokens.get(form.get("refresh_token", ""))
            if grant is None or grant[0] != client_id:
                return JSONResponse(
                    {"error": "invalid_grant", "error_description": "Bad Request"},
                    status_code=400,
                )
            access = "ya29." + secrets.token_urlsafe(32)
            state.access_tokens[access] = (grant[1], time.time() + state.token_ttl)
            body: dict[str, Any] = {
                "access_token": access,
                "expires_in": state.token_ttl,
                "scope": "https://www.googleapis.com/auth/gmail.modify",
                "token_type": "Bearer",
            }
            if state.rotate_refresh_tokens:
                del state.refresh_tokens[form["refresh_token"]]
                fresh = "1//" + secrets.token_urlsafe(24)
                state.refresh_tokens[fresh] = grant
                body["refresh_token"] = fresh
        return JSONResponse(body)

    async def profile(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        with state.lock:
            return JSONResponse(
                {
                    "emailAddress": user.address,
                    "messagesTotal": len(user.messages),
                    "threadsTotal": len({m.thread_id for m in user.messages.values()}),
                    "historyId": str(_current_history(user)),
                }
            )

    async def list_messages(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        labels = request.query_params.getlist("labelIds")
        # Of Gmail's search syntax "after:<epoch seconds>", "rfc822msgid:<id>" and "in:sent"
        # are simulated.
        query = request.query_params.get("q", "")
        after = re.search(r"\bafter:(\d+)", query)
        since_ms = int(after.group(1)) * 1000 if after else 0
        msgid = re.search(r"\brfc822msgid:<?([^\s>]+)>?", query)
        if re.search(r"\bin:sent\b", query):
            labels = [*labels, "SENT"]
        size, offset = _page(request)
        if size is None:
            return google_error(400, "Invalid maxResults or pageToken")
        with state.lock:
            ids = [
                i
                for i in reversed(user.order)  # newest first, as Gmail lists
                if all(label in user.messages[i].labels for label in labels)
                and user.messages[i].internal_date_ms >= since_ms
                and (msgid is None or user.messages[i].message_id_header == msgid.group(1))
            ]
            page = ids[offset : offset + size]
            body: dict[str, Any] = {"resultSizeEstimate": len(ids)}
            if page:
                body["messages"] = [{"id": i, "threadId": user.messages[i].thread_id} for i in page]
            if offset + size < len(ids):
                body["nextPageToken"] = str(offset + size)
        return JSONResponse(body)

    async def get_message(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        with state.lock:
            message = user.messages.get(request.path_params["id"])
            if message is None:
                return google_error(404, "Requested entity was not found.")
            body: dict[str, Any] = {
                "id": message.id,
                "threadId": message.thread_id,
                "labelIds": list(message.labels),
                "snippet": "",
                "sizeEstimate": len(message.raw),
                "historyId": str(message.history_id),
                "internalDate": str(message.internal_date_ms),
            }
            kind = request.query_params.get("format", "full")
            if kind == "raw":
                body["raw"] = base64.urlsafe_b64encode(message.raw).decode()
                state.raw_downloads += 1
            elif kind == "metadata":
                wanted = {h.lower() for h in request.query_params.getlist("metadataHeaders")}
                parsed = email.message_from_bytes(message.raw, policy=email.policy.compat32)
                body["payload"] = {
                    "mimeType": parsed.get_content_type(),
                    "headers": [
                        {"name": name, "value": str(value)}
                        for name, value in parsed.items()
                        if not wanted or name.lower() in wanted
                    ],
                }
            else:
                return google_error(400, "Only format=raw and format=metadata are simulated")
        return JSONResponse(body)

    async def send_message(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body())
            raw = base64.urlsafe_b64decode(str(body["raw"]) + "==")
        except (ValueError, KeyError, TypeError):
            return google_error(400, "Invalid 'raw' field")
        if not raw.strip():
            return google_error(400, "Recipient address required")
        with state.lock:
            thread_id = body.get("threadId")
            if thread_id is not None and not any(
                m.thread_id == thread_id for m in user.messages.values()
            ):
                return google_error(404, "Requested entity was not found.")
            message = state._store(user, raw, ["SENT"], thread_id=thread_id)
            answer = {"id": message.id, "threadId": message.thread_id, "labelIds": ["SENT"]}
        return JSONResponse(answer)

    async def history(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        start_raw = request.query_params.get("startHistoryId")
        if not start_raw or not start_raw.isdigit():
            return google_error(400, "Invalid startHistoryId")
        start = int(start_raw)
        label = request.query_params.get("labelId")
        size, offset = _page(request)
        if size is None:
            return google_error(400, "Invalid maxResults or pageToken")
        with state.lock:
            if start < user.min_history_id:
                return google_error(404, "Requested entity was not found.")
            types = set(request.query_params.getlist("historyTypes")) or {
                "messageAdded", "labelAdded", "messageDeleted", "labelRemoved"
            }  # fmt: skip
            records = []
            for record in user.history:
                if int(record["id"]) <= start:
                    continue
                kept: dict[str, Any] = {}
                if "messageAdded" in types:
                    added = [
                        a
                        for a in record.get("messagesAdded") or []
                        if label is None or label in a["message"]["labelIds"]
                    ]
                    if added:
                        kept["messagesAdded"] = added
                if "labelAdded" in types:
                    labelled = [
                        a
                        for a in record.get("labelsAdded") or []
                        if label is None or label in a["message"]["labelIds"]
                    ]
                    if labelled:
                        kept["labelsAdded"] = labelled
                if kept:
                    records.append({"id": record["id"], "messages": record["messages"], **kept})
            page = records[offset : offset + size]
            body: dict[str, Any] = {"historyId": str(_current_history(user))}
            if page:
                body["history"] = page
            if offset + size < len(records):
                body["nextPageToken"] = str(offset + size)
        return JSONResponse(body)

    async def watch(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            return google_error(400, "Invalid JSON payload received.")
        topic = body.get("topicName")
        if not isinstance(topic, str) or not topic.startswith("projects/"):
            return google_error(400, "Invalid topicName")
        with state.lock:
            user.watch_topic = topic
            user.watch_expiration_ms = int((time.time() + 7 * 86400) * 1000)
            answer = {
                "historyId": str(_current_history(user)),
                "expiration": str(user.watch_expiration_ms),
            }
        return JSONResponse(answer)

    async def stop(request: Request) -> Response:
        user = authorize(request, request.path_params["user"])
        if isinstance(user, Response):
            return user
        with state.lock:
            user.watch_topic = None
            user.watch_expiration_ms = None
        return Response(status_code=204)

    async def sim_faults(request: Request) -> Response:
        body = json.loads(await request.body())
        state.add_fault(
            str(body["path_contains"]),
            int(body["status"]),
            retry_after=body.get("retry_after"),
            count=int(body.get("count", 1)),
        )
        return JSONResponse({"ok": True})

    async def sim_deliver(request: Request) -> Response:
        body = json.loads(await request.body())
        message = state.deliver(str(body["address"]), base64.b64decode(body["raw"]))
        return JSONResponse({"id": message.id, "threadId": message.thread_id})

    async def sim_account(request: Request) -> Response:
        body = json.loads(await request.body())
        token = state.add_account(
            str(body["address"]),
            client_id=str(body["client_id"]),
            client_secret=str(body["client_secret"]),
        )
        return JSONResponse({"refresh_token": token})

    async def certs(request: Request) -> Response:
        return JSONResponse(state.certs(), headers={"Cache-Control": "public, max-age=3600"})

    base = "/gmail/v1/users/{user}"
    return Starlette(
        routes=[
            Route("/token", token, methods=["POST"]),
            Route("/oauth2/v1/certs", certs),
            Route(base + "/profile", profile),
            Route(base + "/messages", list_messages),
            Route(base + "/messages/send", send_message, methods=["POST"]),
            Route(base + "/messages/{id}", get_message),
            Route(base + "/history", history),
            Route(base + "/watch", watch, methods=["POST"]),
            Route(base + "/stop", stop, methods=["POST"]),
            Route("/_sim/faults", sim_faults, methods=["POST"]),
            Route("/_sim/deliver", sim_deliver, methods=["POST"]),
            Route("/_sim/accounts", sim_account, methods=["POST"]),
        ],
        middleware=[Middleware(_HoldRequests, state=state)],
    )


def _current_history(user: SimUser) -> int:
    if user.history:
        return int(user.history[-1]["id"])
    return max(user.min_history_id, 999)


def _page(request: Request) -> tuple[int | None, int]:
    try:
        size = min(MAX_PAGE, int(request.query_params.get("maxResults", DEFAULT_PAGE)))
        offset = int(request.query_params.get("pageToken", "0"))
    except ValueError:
        return None, 0
    return (size if size > 0 else None), offset


def _bare_id(value: object) -> str | None:
    found = re.search(r"<([^<>\s]+)>", str(value or ""))
    return found.group(1) if found else None


class ServerThread:
    """A Starlette app served by uvicorn on a loopback port, in a thread of its own (tests)."""

    def __init__(self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.url = f"http://{self.host}:{self.port}"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self._thread = threading.Thread(target=self._run, name="sim-server", daemon=True)

    def _run(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self, timeout: float = 10.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the simulator did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local Gmail-API-compatible server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8097)
    parser.add_argument("--push-url", default=None, help="where Pub/Sub pushes would go")
    parser.add_argument("--no-rotation", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    state = GmailState(rotate_refresh_tokens=not args.no_rotation)
    state.push_url = args.push_url
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
