"""The whole product on loopback for end-to-end tests: the service (uvicorn in the test loop,
so it shares the database engine), the outbox worker (a task in the same loop), the Twilio
simulator (its own thread) and a real Rasa server (a subprocess) whose custom actions are
served by that service."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.channels.registry import build_senders
from api.config import get_settings
from api.devtools.twilio_simulator import SimConfig, SimulatorThread, sign
from api.engine.client import close_gateway
from api.engine.dispatch import close_senders, get_gateway, get_senders
from api.outbox.worker import run_outbox_worker
from tests.e2e.conftest import RasaServer, running_rasa

ACCOUNT_SID = "AC" + "0" * 31 + "7"
AUTH_TOKEN = "e2e-twilio-auth-token"
WHATSAPP_FROM = "whatsapp:+14155238886"


@dataclass
class Stack:
    service_url: str
    sim: SimulatorThread
    rasa: RasaServer
    http: httpx.AsyncClient

    async def webhook(self, form: dict[str, str]) -> httpx.Response:
        url = self.service_url + "/webhooks/twilio/whatsapp"
        return await self.http.post(
            url, data=form, headers={"X-Twilio-Signature": sign(url, form, AUTH_TOKEN)}
        )

    async def replies_to(
        self, phone: str, *, count: int, timeout: float = 30.0
    ) -> list[dict[str, str]]:
        """The messages the simulator accepted for `phone`, once there are `count` of them."""
        deadline = time.monotonic() + timeout
        while True:
            response = await self.http.get(
                f"{self.sim.url}/_sim/messages", params={"to": f"whatsapp:{phone}"}
            )
            messages: list[dict[str, str]] = response.json()["messages"]
            if len(messages) >= count or time.monotonic() > deadline:
                return messages
            await asyncio.sleep(0.1)


def _socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@asynccontextmanager
async def running_stack(extra_env: dict[str, str] | None = None) -> AsyncIterator[Stack]:
    sock = _socket()
    service_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    action_token = secrets.token_urlsafe(16)
    sim = SimulatorThread(
        SimConfig(
            account_sid=ACCOUNT_SID,
            auth_token=AUTH_TOKEN,
            whatsapp_number=WHATSAPP_FROM,
            webhook_base=service_url,
            callback_delay_seconds=0.05,
        )
    )
    with (
        running_rasa(
            action_endpoint_url=f"{service_url}/actions/webhook", action_token=action_token
        ) as rasa,
        pytest.MonkeyPatch.context() as mp,
    ):
        for key, value in {
            "PUBLIC_BASE_URL": service_url,
            "RASA_URL": rasa.url,
            "RASA_GATEWAY_SECRET": rasa.secret,
            "ACTION_ENDPOINT_TOKEN": action_token,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_WHATSAPP_FROM": WHATSAPP_FROM,
            "TWILIO_API_BASE_URL": sim.url,
            **(extra_env or {}),
        }.items():
            mp.setenv(key, value)
        mp.delenv("TWILIO_MESSAGING_SERVICE_SID", raising=False)
        get_settings.cache_clear()
        get_gateway.cache_clear()
        get_senders.cache_clear()
        sim.start()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=3
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        stop = asyncio.Event()
        worker = asyncio.create_task(
            run_outbox_worker(build_senders(get_settings()), stop=stop, idle_seconds=0.05)
        )
        deadline = time.monotonic() + 15
        while not server.started:
            assert not serving.done() and time.monotonic() < deadline, "service did not start"
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(timeout=30) as http:
                yield Stack(service_url=service_url, sim=sim, rasa=rasa, http=http)
        finally:
            stop.set()
            server.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.gather(worker, serving)
            sim.stop()
            sock.close()
            # lifespan is off: close what the app's shutdown would (the senders' aiohttp
            # session was left open and reported at interpreter exit).
            await close_senders()
            await close_gateway()
            get_settings.cache_clear()
            get_gateway.cache_clear()
            get_senders.cache_clear()
