"""Browser tests: the real service (uvicorn, in a subprocess, on a free loopback port) against
the test database, driven by Playwright in Debian's Chromium (`scripts/ensure-chromium.sh`)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from api.analysts.models import Role
from api.cases.lifecycle import CaseStatus
from api.conversations.inbound import InboundAttachment, InboundMessage, do_receive_message
from api.conversations.models import Channel
from api.db import unit_of_work, utcnow
from api.handoff.service import do_request_handoff
from api.timeline.service import Actor
from tests.factories import make_analyst, make_case, make_infringer

if TYPE_CHECKING:
    from playwright.async_api import Browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse"
# The factory the service is served from; mounts the panel itself until api/app.py does.
SERVE = textwrap.dedent(
    """
    import sys

    import uvicorn

    from api.app import create_app
    from api.panel import install_panel

    app = create_app()
    if not any(getattr(route, "path", "") == "/painel/login" for route in app.routes):
        install_panel(app)
    uvicorn.run(
        app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
        timeout_graceful_shutdown=2,
    )
    """
)
# Approved-template ids for the catalog, so WhatsApp templates can be previewed and sent.
CONTENT_SIDS = (
    '{"primeiro_contato": "HX00000000000000000000000000000001", '
    '"lembrete_prazo": "HX00000000000000000000000000000002", '
    '"link_pagamento": "HX00000000000000000000000000000003", '
    '"retomada_conversa": "HX00000000000000000000000000000004"}'
)
_seq = iter(range(40_000_000, 99_999_999, 104729))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One service process; `url` is its base URL."""

    url: str
    process: asyncio.subprocess.Process
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def service_env(
    database_url: str, port: int, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RASA_", "TWILIO_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        TEMPLATE_CONTENT_SIDS=CONTENT_SIDS,
        PYTHONUNBUFFERED="1",
    )
    env.update(extra or {})
    return env


async def start_service(
    database_url: str, extra_env: Mapping[str, str] | None = None, *, port: int | None = None
) -> Service:
    port = port or free_port()
    env = service_env(database_url, port, extra_env)
    process, log_path = await spawn([sys.executable, "-c", SERVE, str(port)], env)
    service = Service(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path, env=env)
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(timeout=2) as client:
        while True:
            if process.returncode is not None:
                raise RuntimeError(f"the service exited at startup:\n{service.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{service.url}/health")).status_code == 200:
                    return service
            if asyncio.get_running_loop().time() > deadline:
                await stop_service(service)
                raise RuntimeError(f"the service did not start in 60 s:\n{service.output()}")
            await asyncio.sleep(0.1)


async def spawn(
    command: list[str], env: Mapping[str, str]
) -> tuple[asyncio.subprocess.Process, Path]:
    """Start a child process with its output in a temporary log file."""
    fd, log_name = tempfile.mkstemp(prefix="tratativa-child-", suffix=".log")
    with os.fdopen(fd, "wb") as log:  # the child keeps its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            *command, cwd=PROJECT_ROOT, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    return process, Path(log_name)


async def stop_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def stop_service(service: Service) -> None:
    await stop_process(service.process)
    with contextlib.suppress(OSError):
        os.unlink(service.log_path)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not CHROMIUM.exists():
        pytest.skip(
            "Debian's Chromium is not installed at /usr/bin/chromium "
            "(run scripts/ensure-chromium.sh; `make test` does)"
        )
    pytest.importorskip("playwright", reason="the playwright Python package is not installed")
    return str(CHROMIUM)


@pytest.fixture(scope="session")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=chromium, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


@pytest.fixture
async def service(database_url: str, chromium: str) -> AsyncIterator[Service]:
    started = await start_service(database_url)
    yield started
    await stop_service(started)


@pytest.fixture
def screenshot_dir() -> Iterator[Path | None]:
    """Where to save screenshots (TRATATIVA_SCREENSHOTS), or None."""
    target = os.environ.get("TRATATIVA_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
    yield Path(target) if target else None


# --- data, committed through the real services -----------------------------------------------


@dataclass(frozen=True)
class Seeded:
    conversation_id: int
    case_id: int
    address: str


async def seed_analyst(role: Role = Role.ANALYST) -> tuple[int, str]:
    async with unit_of_work() as session:
        analyst = await make_analyst(session, role=role)
        return analyst.id, analyst.email


def png_bytes(width: int = 48, height: int = 32) -> bytes:
    """A small, valid PNG (a green receipt-like block)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + b"\x2e\x9e\x6b" * width
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


async def seed_whatsapp_conversation(*, phone: str | None = None) -> Seeded:
    """A case in negotiation and its WhatsApp conversation, held by the bot: the infringer sent
    a photo, the bot read it and answered.

    Both inbound messages are stored as the bot turn leaves them: read (intent) and handled
    (handled_at). Left unhandled they would be pending turns the bot (or the worker's sweeper,
    whenever it passes) answers later, out of the scenario's order."""
    from api.conversations.outbound import Outbound, do_queue_outbound

    phone = phone or f"+55319{next(_seq):08d}"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="Maria Souza", phones=(phone,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_NEGOCIACAO)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"SM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text="oi, recebi a notificação. da pra parcelar?",
                received_at=utcnow() - dt.timedelta(minutes=12),
                raw={},
            ),
        )
        received.message.intent = "ask_installments"
        received.message.intent_confidence = 0.91
        received.message.entities = []
        received.message.handled_at = received.message.created_at
        await do_queue_outbound(
            session,
            conversation=received.conversation,
            outbound=Outbound(text="Claro! Posso oferecer até 6 parcelas. Quantas você prefere?"),
            actor=Actor.bot(),
        )
        photo = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.WHATSAPP,
                external_id=f"MM{uuid.uuid4().hex}",
                sender=f"whatsapp:{phone}",
                text="quero falar com uma pessoa, segue foto do produto",
                received_at=utcnow() - dt.timedelta(minutes=3),
                raw={},
                attachments=(InboundAttachment("image/png", png_bytes(), "produto.png"),),
            ),
        )
        photo.message.intent = "request_human"
        photo.message.intent_confidence = 0.97
        photo.message.handled_at = photo.message.created_at
        return Seeded(received.conversation.id, case.id, phone)


XSS_TEXT = "Segue nossa resposta <script>alert(1)</script> <img src=x onerror=alert(1)> fim."
XSS_HTML = (
    "<p>Prezados,</p><p>Segue a resposta da empresa.</p><script>alert(1)</script>"
    '<img src=x onerror=alert(1)><a href="javascript:alert(1)">ver</a>'
    '<p onmouseover="alert(1)">Atenciosamente,<br>Departamento Jurídico</p>'
)


async def seed_email_with_xss() -> Seeded:
    address = f"juridico{next(_seq)}@lojaexemplo.com.br"
    async with unit_of_work() as session:
        infringer = await make_infringer(session, name="Loja Exemplo Ltda", emails=(address,))
        case = await make_case(session, infringer=infringer, status=CaseStatus.EM_ATENDIMENTO)
        received = await do_receive_message(
            session,
            InboundMessage(
                channel=Channel.EMAIL,
                external_id=f"<{uuid.uuid4().hex}@lojaexemplo.com.br>",
                sender=address,
                text=XSS_TEXT,
                received_at=utcnow(),
                raw={},
                subject="Re: Notificação extrajudicial <script>alert(1)</script>",
                meta={
                    "html": XSS_HTML,  # the key e-mail ingestion writes (unsanitized here)
                    "from": address,
                    "from_name": "Departamento Jurídico",
                    "to": ["atendimento@tratativa.example"],
                    "cc": ["advogado@escritorio.adv.br"],
                },
                case_hint=case.id,
            ),
        )
        await do_request_handoff(
            session,
            conversation=received.conversation,
            reason="advogado em cópia",
            actor=Actor.bot(),
        )
        return Seeded(received.conversation.id, case.id, address)


async def api_token(base_url: str, email: str) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            "/api/v1/auth/token", data={"username": email, "password": PASSWORD}
        )
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def escalate(base_url: str, email: str, conversation_id: int, reason: str) -> None:
    headers = await api_token(base_url, email)
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        response = await client.post(
            f"/api/v1/conversations/{conversation_id}/escalate",
            json={"reason": reason},
            headers=headers,
        )
        assert response.status_code == 200, response.text
