"""The servers the WhatsApp provider tests talk to, and the stored payloads they post.

`provider_stack(provider)` runs, on loopback ports: the provider's simulator (its own thread)
and the Tratativa service (uvicorn in the test's event loop), configured for each other with
the simulator's development credentials. Webhooks are signed or authenticated exactly as the
provider does it (Meta: X-Hub-Signature-256; 360dialog: path secret + header; Z-API and
UltraMsg: path secret + a known instance).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from api.config import get_settings
from api.devtools.whatsapp_provider_sim import (
    SimConfig,
    SimulatorThread,
    api_base,
    encode,
    webhook_headers,
    webhook_path,
)
from api.engine.dispatch import get_gateway, get_senders
from tests.fixtures.twilio.harness import free_socket, service_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PROVIDERS = ("meta", "360dialog", "zapi", "ultramsg")
# The sample values the stored fixtures carry, replaced by fresh ones in each test.
SAMPLE_PHONE = "5511987650000"
SAMPLE_IDS = {
    "meta": "wamid.HBgNNTUxMTk4NzY1MDAwMBUCABIYFDNBMDRCRDU3QzI0QjhEQjE5RTM2AA==",
    "360dialog": "wamid.HBgNNTUxMTk4NzY1MDAwMBUCABIYFDNBQjVEMTIzRjJGNEU3OEYyNDI5AA==",
    "zapi": "3EB0A7C1D2E3F4A5B6C7",
    "ultramsg": "false_5511987650000@c.us_3EB0C431C26A1916603B",
}
SAMPLE_MEDIA = {
    "meta": "1234567890123456",
    "360dialog": "1234567890123456",
    "zapi": "https://storage.z-api.io/instances/3C0FFEE0000000000000000000000001/"
    "3EB0A7C1D2E3F4A5B6C7.jpeg",
    "ultramsg": "https://sgp1.digitaloceanspaces.com/ultramsg/3EB0C431C26A1916603B.jpeg",
}


def provider_env(provider: str, cfg: SimConfig, sim_url: str) -> dict[str, str]:
    """The service's environment for a provider simulator at `sim_url`."""
    env = {
        "WHATSAPP_PROVIDER": provider,
        "META_APP_SECRET": cfg.app_secret,
        "META_VERIFY_TOKEN": "dev-meta-verify-token",
        "META_ACCESS_TOKEN": cfg.access_token,
        "META_PHONE_NUMBER_ID": cfg.phone_number_id,
        "META_NUMBER": cfg.number,
        "D360_API_KEY": cfg.d360_api_key,
        "D360_WEBHOOK_SECRET": cfg.webhook_secret,
        "D360_NUMBER": cfg.number,
        "ZAPI_INSTANCE_ID": cfg.instance_id,
        "ZAPI_TOKEN": cfg.token,
        "ZAPI_CLIENT_TOKEN": cfg.client_token,
        "ZAPI_WEBHOOK_SECRET": cfg.webhook_secret,
        "ZAPI_NUMBER": cfg.number,
        "ULTRAMSG_INSTANCE_ID": cfg.instance_id,
        "ULTRAMSG_TOKEN": cfg.token,
        "ULTRAMSG_WEBHOOK_SECRET": cfg.webhook_secret,
        "ULTRAMSG_NUMBER": cfg.number,
    }
    base = api_base(provider, sim_url)
    env[
        {
            "meta": "META_GRAPH_URL",
            "360dialog": "D360_BASE_URL",
            "zapi": "ZAPI_BASE_URL",
            "ultramsg": "ULTRAMSG_BASE_URL",
        }[provider]
    ] = base
    return env


def load_payload(
    provider: str,
    name: str,
    *,
    phone: str | None = None,
    message_id: str | None = None,
    media_ref: str | None = None,
) -> dict[str, Any]:
    """A stored payload (tests/fixtures/<provider>/<name>.json) with fresh values."""
    text = (FIXTURES / provider / f"{name}.json").read_text(encoding="utf-8")
    # The media first: the unofficial gateways' sample URLs contain the sample message id.
    if media_ref is not None:
        text = text.replace(SAMPLE_MEDIA[provider], media_ref)
    if message_id is not None:
        text = text.replace(SAMPLE_IDS[provider], message_id)
    if phone is not None:
        text = text.replace(SAMPLE_PHONE, phone.lstrip("+"))
    payload: dict[str, Any] = json.loads(text)
    return payload


@dataclass
class ProviderStack:
    provider: str
    config: SimConfig
    service_url: str
    sim: SimulatorThread
    http: httpx.AsyncClient

    @property
    def sim_url(self) -> str:
        return self.sim.url

    @property
    def number(self) -> str:
        return self.config.number

    async def post(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        path: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST a webhook authenticated as the provider does (override path/headers to forge)."""
        body = payload if isinstance(payload, bytes) else encode(dict(payload))
        sent = webhook_headers(self.config, body) if headers is None else dict(headers)
        return await self.http.post(
            self.service_url + (path or webhook_path(self.config)), content=body, headers=sent
        )

    async def sim_messages(self, to: str) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.sim_url}/_sim/messages", params={"to": to})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["messages"]
        return found

    async def sim_fault(self, **spec: Any) -> None:
        response = await self.http.post(f"{self.sim_url}/_sim/faults", json=spec)
        assert response.status_code == 201, response.text

    async def sim_status(self, message_id: str, status: str, **extra: Any) -> int:
        response = await self.http.post(
            f"{self.sim_url}/_sim/status", json={"id": message_id, "status": status, **extra}
        )
        response.raise_for_status()
        code: int = response.json()["status"]
        return code

    async def sim_media(self, data: bytes, content_type: str, **faults: int) -> dict[str, Any]:
        response = await self.http.post(
            f"{self.sim_url}/_sim/media",
            json={
                "content_type": content_type,
                "data_b64": base64.b64encode(data).decode(),
                **faults,
            },
        )
        assert response.status_code == 201, response.text
        media: dict[str, Any] = response.json()
        return media

    async def sim_media_stats(self, media_id: str) -> dict[str, Any]:
        response = await self.http.get(f"{self.sim_url}/_sim/media/{media_id}/stats")
        stats: dict[str, Any] = response.json()
        return stats


@asynccontextmanager
async def provider_stack(
    provider: str, *, callback_delay: float = 0.1, env: Mapping[str, str] | None = None
) -> AsyncIterator[ProviderStack]:
    sock = free_socket()
    service_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    cfg = SimConfig(
        provider=provider, webhook_base=service_url, callback_delay_seconds=callback_delay
    )
    sim = SimulatorThread(cfg)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PUBLIC_BASE_URL", service_url)
        for key, value in {**provider_env(provider, cfg, sim.url), **(env or {})}.items():
            mp.setenv(key, value)
        mp.delenv("RASA_URL", raising=False)  # the bot loop hands turns to a person
        get_settings.cache_clear()
        get_gateway.cache_clear()
        get_senders.cache_clear()
        sim.start()
        server = uvicorn.Server(
            uvicorn.Config(
                service_app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=5
            )
        )
        task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done() and time.monotonic() < deadline, "service did not start"
            await asyncio.sleep(0.01)
        try:
            async with httpx.AsyncClient(timeout=20) as http:
                yield ProviderStack(
                    provider=provider, config=cfg, service_url=service_url, sim=sim, http=http
                )
        finally:
            server.should_exit = True
            await task
            sim.stop()
            sock.close()
    get_settings.cache_clear()
    get_gateway.cache_clear()
    get_senders.cache_clear()
