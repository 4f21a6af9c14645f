"""The client of our Rasa gateway channel (bot/gateway.py): one call per user turn."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from api.config import RasaSettings, get_settings
from api.errors import AppError

log = logging.getLogger(__name__)
GATEWAY_PATH = "/webhooks/tratativa"
# Rasa's web server (Sanic) closes a keep-alive connection after 5 idle seconds; a request sent
# on it just then fails after it may have reached Rasa, which is never retried. Connections idle
# for 4 s are dropped on this side first.
KEEPALIVE_SECONDS = 4.0


class EngineUnavailable(AppError):
    """Rasa could not be reached or failed; the turn must go to a person."""

    code = "engine_unavailable"
    status_code = 503


@dataclass(frozen=True)
class NluReading:
    intent: str | None
    confidence: float | None
    entities: list[dict[str, Any]] = field(default_factory=list)
    ranking: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class BotMessage:
    text: str
    image: str | None = None
    custom: dict[str, Any] | None = None


@dataclass(frozen=True)
class EngineTurn:
    messages: list[BotMessage]
    nlu: NluReading | None
    paused: bool
    actions: list[str] = field(default_factory=list)
    # Rasa had already processed this message id and answered from its tracker (no action ran).
    replayed: bool = False


def strip_command_prefix(text: str) -> str:
    """A leading '/' would let anyone inject an intent ("/request_human"); it never reaches Rasa."""
    return text.strip().lstrip("/").strip()


def parse_turn(body: dict[str, Any]) -> EngineTurn:
    nlu_body = body.get("nlu") or None
    nlu = None
    if nlu_body:
        intent = nlu_body.get("intent") or {}
        nlu = NluReading(
            intent=intent.get("name"),
            confidence=intent.get("confidence"),
            entities=[
                {k: e.get(k) for k in ("entity", "value", "start", "end", "extractor")}
                for e in nlu_body.get("entities") or []
            ],
            ranking=list(nlu_body.get("intent_ranking") or [])[:5],
        )
    messages = [
        BotMessage(text=m.get("text") or "", image=m.get("image"), custom=m.get("custom"))
        for m in body.get("messages") or []
        if m.get("text") or m.get("image") or m.get("custom")
    ]
    return EngineTurn(
        messages=messages,
        nlu=nlu,
        paused=bool(body.get("paused")),
        actions=[str(a) for a in body.get("actions") or []],
        replayed=bool(body.get("replayed")),
    )


class RasaGateway:
    """Talks to the Rasa server through the gateway channel, authenticated by a shared secret."""

    def __init__(self, settings: RasaSettings) -> None:
        if not settings.url:
            raise EngineUnavailable("RASA_URL não configurada.")
        self._base = settings.url.rstrip("/") + GATEWAY_PATH
        self._headers = {"X-Tratativa-Secret": settings.gateway_secret.get_secret_value()}
        self._timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
        # aiohttp rather than httpx: one call per turn on the service's hot path, and aiohttp
        # (already here as the twilio library's client) costs about half the CPU per request.
        # Its sessions belong to one event loop: the session is built in the loop that calls.
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def aclose(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = self._loop = None

    def _client(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS),
            )
            self._loop = loop
        return self._session

    async def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        # Only a refused connection is retried: the request never reached Rasa, so it cannot be
        # processed twice. A timeout or a 5xx goes to a person instead.
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(aiohttp.ClientConnectorError),
                stop=stop_after_attempt(3),
                wait=wait_exponential_jitter(multiplier=0.2, max=1.0),
                reraise=True,
            ):
                with attempt:
                    async with self._client().post(
                        self._base + path, json=payload, headers=self._headers
                    ) as response:
                        status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EngineUnavailable(f"Rasa indisponível ({type(exc).__name__}).") from exc
        if status != 200:
            raise EngineUnavailable(f"Rasa respondeu {status}.")
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise EngineUnavailable("Resposta inválida do Rasa.") from exc
        if not isinstance(body, dict):
            raise EngineUnavailable("Resposta inválida do Rasa.")
        return body

    async def send_turn(
        self,
        *,
        sender: str,
        text: str,
        message_id: str,
        channel: str,
        metadata: dict[str, Any] | None = None,
    ) -> EngineTurn:
        payload = {
            "sender": sender,
            "message": strip_command_prefix(text),
            "message_id": message_id,
            "channel": channel,
            "metadata": metadata or {},
        }
        return parse_turn(await self._post("/webhook", payload))

    async def send_events(self, *, sender: str, events: list[dict[str, Any]]) -> bool:
        """Append pause/resume/slot events; returns whether the conversation is paused."""
        body = await self._post("/events", {"sender": sender, "events": events})
        return bool(body.get("paused"))

    async def pause(self, sender: str) -> bool:
        return await self.send_events(sender=sender, events=[{"event": "pause"}])

    async def resume(self, sender: str) -> bool:
        return await self.send_events(sender=sender, events=[{"event": "resume"}])


@lru_cache(maxsize=1)
def get_gateway() -> RasaGateway | None:
    """This process's gateway client; None when no RASA_URL is configured."""
    settings = get_settings()
    return RasaGateway(settings.rasa) if settings.rasa.url else None


async def close_gateway() -> None:
    """Close this process's gateway connections at shutdown, if any were opened."""
    if get_gateway.cache_info().currsize:
        gateway = get_gateway()
        if gateway is not None:
            await gateway.aclose()
