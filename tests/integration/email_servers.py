"""Real mail servers for the e-mail tests: Debian's Dovecot (IMAP) on a loopback port with a
throwaway maildir, and an aiosmtpd SMTP server that collects what we send and can be told to
answer with an error.

Dovecot is installed with apt-get when missing (CI runs as root); without it and without root
the tests are skipped with the reason. Helpers talk to Dovecot with the standard library's
imaplib, not with the client under test. Test modules import the fixtures by their function
names (`dovecot_fixture`, `imap_folder_fixture`, `smtp_server_fixture`); pytest knows them as
`dovecot`, `imap_folder` and `smtp_server`.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from api.channels.email.imap import ImapAccount

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "email"
IMAP_USER = "caixa@tratativa.test"
IMAP_PASSWORD = "senha-de-teste"
_DOVECOT_CANDIDATES = ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, *, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def dovecot_binary() -> str:
    """Dovecot's path, installing Debian's dovecot-imapd when missing (root only)."""
    found = shutil.which("dovecot") or next(
        (p for p in _DOVECOT_CANDIDATES if os.path.exists(p)), None
    )
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd needs root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "dovecot-imapd"],
        check=True,
        env=env,
        capture_output=True,
    )
    found = shutil.which("dovecot") or next(
        (p for p in _DOVECOT_CANDIDATES if os.path.exists(p)), None
    )
    if not found:
        pytest.fail("dovecot-imapd installed but no dovecot binary found")
    return found


@dataclass
class Dovecot:
    """A running throwaway Dovecot and helpers to fill its mailbox."""

    port: int
    root: Path
    binary: str
    process: subprocess.Popen[bytes] | None = None
    host: str = "127.0.0.1"
    user: str = IMAP_USER
    password: str = IMAP_PASSWORD

    def start(self) -> None:
        """Start (or restart) the server on the same port and mailbox."""
        self.process = subprocess.Popen(
            [self.binary, "-F", "-c", str(self.root / "dovecot.conf")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(self.port)
        except RuntimeError:
            self.process.kill()
            out = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
            raise RuntimeError(f"dovecot did not start:\n{out}\n{self.log()}") from None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
        # The listener is gone when the master exits; wait until the port is free again.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)

    def deliver_offline(self, folder: str, raw: bytes) -> None:
        """Drop a message straight into the folder's maildir, as a delivery agent would while no
        IMAP client is connected (the server indexes it on its next look)."""
        target = self.root / "mail" / self.user.split("@")[0] / f".{folder}" / "new"
        target.mkdir(parents=True, exist_ok=True)
        name = f"{int(time.time())}.M{time.monotonic_ns()}P{os.getpid()}.tratativa"
        path = target / name
        path.write_bytes(raw)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("dovecot")
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def account(self, folder: str = "INBOX") -> ImapAccount:
        return ImapAccount(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            ssl=False,
            folder=folder,
        )

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        client = imaplib.IMAP4(self.host, self.port)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def create_folder(self, folder: str) -> None:
        with self.connect() as client:
            client.create(folder)

    def append(self, folder: str, messages: Iterable[bytes]) -> int:
        """APPEND the messages in order; returns how many."""
        count = 0
        with self.connect() as client:
            for raw in messages:
                status, detail = client.append(folder, None, None, raw)
                if status != "OK":
                    raise RuntimeError(f"APPEND failed: {detail!r}")
                count += 1
        return count

    def recreate_folder(self, folder: str) -> None:
        """DELETE and CREATE the folder: the server gives it a new UIDVALIDITY."""
        with self.connect() as client:
            client.delete(folder)
            client.create(folder)

    def uidvalidity(self, folder: str) -> int:
        with self.connect() as client:
            status, data = client.status(folder, "(UIDVALIDITY)")
            assert status == "OK", data
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(text.rsplit("UIDVALIDITY", 1)[1].strip(" )"))

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _config(root: Path, port: int, *, as_root: bool) -> str:
    if as_root:
        internal, login = "dovecot", "dovenull"
        mail_user = pwd.getpwnam("dovecot")
    else:
        me = pwd.getpwuid(os.getuid())
        internal = login = me.pw_name
        mail_user = me
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {pwd.getpwnam(internal).pw_name if as_root else internal}
default_login_user = {login}
first_valid_uid = {mail_user.pw_uid}
mail_location = maildir:{root}/mail/%n
mail_fsync = never
mail_privileged_group =
protocol imap {{
  mail_max_userip_connections = 100
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={root}/home/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@contextlib.contextmanager
def run_dovecot() -> Iterator[Dovecot]:
    """Start Dovecot with a throwaway configuration and mailbox; stop it and delete everything
    afterwards."""
    binary = dovecot_binary()
    as_root = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="tratativa-dovecot-"))
    root.chmod(0o755)
    port = free_port()
    for sub in ("run", "state", "mail", "home"):
        (root / sub).mkdir()
    (root / "passwd").write_text(f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}\n")
    (root / "dovecot.conf").write_text(_config(root, port, as_root=as_root))
    if as_root:
        owner = pwd.getpwnam("dovecot")
        for sub in ("mail", "home"):
            os.chown(root / sub, owner.pw_uid, owner.pw_gid)
    server = Dovecot(port=port, root=root, binary=binary)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session", name="dovecot")
def dovecot_fixture() -> Iterator[Dovecot]:
    with run_dovecot() as server:
        yield server


@pytest.fixture(name="imap_folder")
def imap_folder_fixture(dovecot: Dovecot, request: pytest.FixtureRequest) -> str:
    """A fresh folder per test, so tests never see each other's mail."""
    name = "T" + "".join(ch for ch in request.node.name if ch.isalnum())[:40] + uuid.uuid4().hex[:8]
    dovecot.create_folder(name)
    return name


# --- SMTP ----------------------------------------------------------------------------------


@dataclass
class SmtpSink:
    """Collects accepted mail; `script` holds replies to give instead of accepting (in order)."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    script: list[str] = field(default_factory=list)
    attempts: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.script:
            return self.script.pop(0)
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos]))
        return "250 2.0.0 Ok: queued"


@dataclass
class SmtpServer:
    host: str
    port: int
    sink: SmtpSink

    def settings_env(self) -> dict[str, Any]:
        return {
            "SMTP_HOST": self.host,
            "SMTP_PORT": str(self.port),
            "SMTP_STARTTLS": "false",
            "SMTP_SSL": "false",
        }


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    sink = SmtpSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, sink=sink)
    finally:
        controller.stop()


# --- the .eml corpus -----------------------------------------------------------------------

_ID_HEADER_RE = re.compile(
    rb"^(?:message-id|in-reply-to|references)[ \t]*:.*(?:\r?\n[ \t].*)*",
    re.IGNORECASE | re.MULTILINE,
)
_MSGID_RE = re.compile(rb"<([^<>@\s]+)@([^<>\s]+)>")
_FROM_RE = re.compile(rb"^From:.*$", re.IGNORECASE | re.MULTILINE)
_ADDRESS_RE = re.compile(rb"([A-Za-z0-9._%+-]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def load_eml(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def corpus() -> list[str]:
    return sorted(p.name for p in FIXTURES.glob("*.eml"))


def tagged_id(message_id: str, tag: str) -> str:
    """The Message-ID `personalize` turns `message_id` into."""
    local, _, domain = message_id.strip("<>").partition("@")
    return f"{local}.{tag}@{domain}"


def tagged_address(address: str, tag: str) -> str:
    """The From address `personalize` turns `address` into."""
    local, _, domain = address.partition("@")
    return f"{local}+{tag}@{domain}"


def personalize(raw: bytes, tag: str, replace: dict[str, str] | None = None) -> bytes:
    """A corpus mail made unique to one test: every Message-ID in Message-ID / In-Reply-To /
    References headers and the From address get `tag`; `replace` swaps other literal strings."""
    marker = tag.encode()

    def ids(match: re.Match[bytes]) -> bytes:
        return _MSGID_RE.sub(
            lambda m: b"<" + m.group(1) + b"." + marker + b"@" + m.group(2) + b">", match.group(0)
        )

    def sender(match: re.Match[bytes]) -> bytes:
        return _ADDRESS_RE.sub(
            lambda m: m.group(1) + b"+" + marker + b"@" + m.group(2), match.group(0), count=1
        )

    raw = _ID_HEADER_RE.sub(ids, raw)
    raw = _FROM_RE.sub(sender, raw, count=1)
    for old, new in (replace or {}).items():
        raw = raw.replace(old.encode(), new.encode())
    return raw


def make_mail(
    *,
    sender: str,
    subject: str,
    body: str,
    message_id: str | None = None,
    to: str = "atendimento@tratativa.example",
    headers: dict[str, str] | None = None,
    attachments: tuple[tuple[bytes, str, str], ...] = (),
) -> bytes:
    """A plain mail built with the standard library (synthetic cases the corpus lacks)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Tue, 03 Mar 2026 10:00:00 -0300"
    if message_id is not None:
        message["Message-ID"] = f"<{message_id}>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    for data, filename, content_type in attachments:
        maintype, _, subtype = content_type.partition("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=policy.SMTP)
