"""`tratativa chat --phone +5511…`: chat as an infringer on WhatsApp from the terminal.

Each line goes to the service as a signed Twilio webhook — through the local Twilio simulator
(default) or signed here with TWILIO_AUTH_TOKEN and posted straight to the service (`--direct`).
Replies to that phone arriving at the simulator are printed as they come.
"""

from __future__ import annotations

import asyncio
import base64
import mimetypes
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from api.identifiers.errors import InvalidIdentifier
from api.identifiers.phones import normalize_phone

DEFAULT_SIMULATOR_URL = "http://127.0.0.1:8099"
EXIT_WORDS = frozenset({"sair", "/sair"})
ATTACH_COMMAND = "/anexo"
POLL_WAIT_SECONDS = 10.0

console = Console(highlight=False)


# The local simulator of each provider (api.devtools.*_simulator), as `make run` starts it.
PROVIDER_SIMULATORS = {
    "twilio": DEFAULT_SIMULATOR_URL,
    "meta": "http://127.0.0.1:8101",
    "360dialog": "http://127.0.0.1:8102",
    "zapi": "http://127.0.0.1:8103",
    "ultramsg": "http://127.0.0.1:8104",
}


def chat(
    phone: Annotated[str, typer.Option("--phone", help="The infringer's WhatsApp number (E.164).")],
    provider: Annotated[
        str,
        typer.Option(help="twilio, meta, 360dialog, zapi or ultramsg: whose simulator to use."),
    ] = "twilio",
    simulator: Annotated[
        str | None,
        typer.Option(help="The provider simulator's URL (replies are read there)."),
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct", help="Sign the webhook here (TWILIO_AUTH_TOKEN) and post it to the service."
        ),
    ] = False,
    service_url: Annotated[
        str | None,
        typer.Option(help="With --direct: where the service listens (default PUBLIC_BASE_URL)."),
    ] = None,
    name: Annotated[str, typer.Option(help="WhatsApp profile name.")] = "Infrator Teste",
) -> None:
    """Chat as an infringer on WhatsApp: each line is a signed webhook; bot replies print here."""
    if provider not in PROVIDER_SIMULATORS:
        console.print(
            f"[red]erro:[/red] provedor desconhecido: {escape(provider)} "
            f"(use {', '.join(PROVIDER_SIMULATORS)})"
        )
        raise typer.Exit(2)
    if direct and provider != "twilio":
        console.print("[red]erro:[/red] --direct só existe para o Twilio")
        raise typer.Exit(2)
    try:
        e164 = normalize_phone(phone)
    except InvalidIdentifier as exc:
        console.print(f"[red]erro:[/red] telefone inválido: {escape(phone)}")
        raise typer.Exit(2) from exc
    session = ChatSession(
        phone=e164,
        simulator=(simulator or PROVIDER_SIMULATORS[provider]).rstrip("/"),
        provider=provider,
        direct=direct,
        service_url=service_url,
        profile_name=name,
    )
    try:
        asyncio.run(session.run())
    except KeyboardInterrupt:
        console.print()


class ChatSession:
    def __init__(
        self,
        *,
        phone: str,
        simulator: str,
        direct: bool,
        service_url: str | None,
        profile_name: str,
        provider: str = "twilio",
    ) -> None:
        self.provider = provider
        self.phone = phone
        self.simulator = simulator
        self.direct = direct
        self.service_url = service_url
        self.profile_name = profile_name

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0)) as http:
            after = await self._last_seq(http)
            if after is None and not self.direct:
                module = {"360dialog": "dialog360"}.get(self.provider, self.provider)
                console.print(
                    f"[red]erro:[/red] simulador do {self.provider} fora do ar em "
                    f"{self.simulator} (python -m api.devtools.{module}_simulator)"
                )
                raise typer.Exit(1)
            if after is None:
                console.print(
                    "[yellow]aviso:[/yellow] simulador fora do ar: as respostas não serão exibidas"
                )
            console.print(
                f"Conversando como [bold]{self.phone}[/bold]. Digite a mensagem e Enter; "
                '"sair" ou Ctrl-D encerra. Para testar o opt-out, envie "PARAR". '
                f"{ATTACH_COMMAND} <arquivo> envia um anexo."
            )
            poller = (
                asyncio.create_task(self._print_replies(http, after)) if after is not None else None
            )
            try:
                await self._read_and_send(http)
            finally:
                if poller is not None:
                    poller.cancel()
                    await asyncio.gather(poller, return_exceptions=True)

    async def _read_and_send(self, http: httpx.AsyncClient) -> None:
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        _start_reader(asyncio.get_running_loop(), lines)
        while True:
            line = await lines.get()
            if line is None or line.strip().lower() in EXIT_WORDS:
                return
            text = line.strip()
            if not text:
                continue
            try:
                if text.startswith(ATTACH_COMMAND + " "):
                    await self._send(http, body="", attachment=Path(text.split(" ", 1)[1].strip()))
                else:
                    await self._send(http, body=text)
            except (httpx.HTTPError, OSError) as exc:
                console.print(
                    f"[red]erro ao enviar:[/red] {escape(str(exc) or type(exc).__name__)}"
                )

    async def _send(
        self, http: httpx.AsyncClient, *, body: str, attachment: Path | None = None
    ) -> None:
        if self.direct:
            if attachment is not None:
                console.print("[yellow]anexos só pelo simulador (sem --direct)[/yellow]")
                return
            status = await self._send_direct(http, body)
        else:
            payload: dict[str, Any] = {
                "from": self.phone,
                "body": body,
                "profile_name": self.profile_name,
            }
            if attachment is not None:
                content_type = (
                    mimetypes.guess_type(attachment.name)[0] or "application/octet-stream"
                )
                payload["media"] = [
                    {
                        "content_type": content_type,
                        "data_b64": base64.b64encode(
                            await asyncio.to_thread(attachment.read_bytes)
                        ).decode("ascii"),
                    }
                ]
            response = await http.post(f"{self.simulator}/_sim/inbound", json=payload)
            response.raise_for_status()
            status = response.json().get("status")
        if status != 200:
            console.print(f"[red]o serviço respondeu {status}[/red]")

    async def _send_direct(self, http: httpx.AsyncClient, body: str) -> int:
        from api.config import get_settings
        from api.devtools.twilio_simulator import (
            DEV_WHATSAPP_NUMBER,
            MESSAGE_WEBHOOK_PATH,
            build_inbound_form,
            sign,
        )

        settings = get_settings()
        token = settings.twilio.auth_token
        if token is None or not settings.twilio.account_sid:
            raise typer.BadParameter("--direct precisa de TWILIO_ACCOUNT_SID e TWILIO_AUTH_TOKEN")
        form = build_inbound_form(
            account_sid=settings.twilio.account_sid,
            to=settings.twilio.whatsapp_from or DEV_WHATSAPP_NUMBER,
            sender=self.phone,
            body=body,
            profile_name=self.profile_name,
        )
        signed_url = settings.public_base_url.rstrip("/") + MESSAGE_WEBHOOK_PATH
        target = (self.service_url or settings.public_base_url).rstrip("/") + MESSAGE_WEBHOOK_PATH
        response = await http.post(
            target,
            data=form,
            headers={"X-Twilio-Signature": sign(signed_url, form, token.get_secret_value())},
        )
        return response.status_code

    async def _last_seq(self, http: httpx.AsyncClient) -> int | None:
        try:
            response = await http.get(f"{self.simulator}/_sim")
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        return int(response.json().get("last_seq", 0))

    async def _print_replies(self, http: httpx.AsyncClient, after: int) -> None:
        while True:
            try:
                response = await http.get(
                    f"{self.simulator}/_sim/messages",
                    params={"to": self.phone, "after": after, "wait": POLL_WAIT_SECONDS},
                )
                response.raise_for_status()
                messages = response.json()["messages"]
            except (httpx.HTTPError, ValueError, KeyError):
                await asyncio.sleep(1.0)
                continue
            for message in messages:
                after = max(after, int(message["seq"]))
                template = message.get("template") or {}
                name = message.get("content_sid") or template.get("name")
                text = message.get("body") or f"[modelo {name}]"
                console.print(f"[green]bot>[/green] {escape(text)}")


def _start_reader(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Read stdin in a daemon thread, so leaving never waits for a pending input()."""

    def read() -> None:
        while True:
            try:
                line: str | None = sys.stdin.readline()
            except (OSError, ValueError):
                line = None
            if not line:  # "" is end of input (Ctrl-D)
                line = None
            try:
                loop.call_soon_threadsafe(lines.put_nowait, line)
            except RuntimeError:  # the loop is gone: the chat ended
                return
            if line is None:
                return

    threading.Thread(target=read, name="chat-stdin", daemon=True).start()
