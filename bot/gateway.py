"""The Tratativa gateway: the one way the service talks to the Rasa server.

Served at /webhooks/tratativa/ when credentials.yml lists `bot.gateway.GatewayInput`.
Unlike Rasa's REST channel it checks a shared secret, answers errors as errors (never 200 with
an empty list), and returns in one call the bot's messages, the NLU reading of the user turn
and whether the conversation is paused. A message id it has already processed is not run again:
the recorded reply is returned (`"replayed": true`) and no custom action runs.

    POST /webhooks/tratativa/webhook  {"sender", "message", "message_id", "channel", "metadata"}
    POST /webhooks/tratativa/events   {"sender", "events": [{"event": "pause"|"resume"|"slot"}]}
    GET  /webhooks/tratativa/         health, no secret
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from rasa.shared.core.events import (
    ActionExecuted,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import speedups

speedups.install()  # the Rasa server loads this channel at start: see bot/speedups.py

logger = logging.getLogger(__name__)

SECRET_HEADER = "X-Tratativa-Secret"
CHANNELS = frozenset({"whatsapp", "email"})
RANKING_LENGTH = 5
ACTION_LISTEN = "action_listen"
MESSAGE_KEYS = ("text", "buttons", "image", "custom", "attachment")


class BadRequest(Exception):
    """The request body is not what the protocol expects (answered 400)."""


class GatewayOutput(CollectingOutputChannel):
    """Collects the bot's messages; named after the request's channel.

    Rasa picks response variants by `output_channel.name()`, so a response with a
    `channel: email` variant in domain.yml is chosen for e-mail conversations.
    """

    def __init__(self, channel: str) -> None:
        super().__init__()
        self._channel = channel

    def name(self) -> str:  # type: ignore[override]
        """The conversation's channel: "whatsapp" or "email"."""
        return self._channel

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        # CollectingOutputChannel splits texts on blank lines into several messages; an
        # e-mail answer must stay one message with its paragraphs.
        await self._persist_message(self._message(recipient_id, text=text.strip()))


def strip_command(text: str) -> str:
    """Drop leading "/" so nobody can inject an intent ("/request_human", "/restart")."""
    return text.strip().lstrip("/").strip()


def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("body is not valid JSON") from exc
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    return body


def _required_string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{key}' is required (a non-empty string)")
    return value.strip()


def _nlu_reading(tracker: DialogueStateTracker, message_id: str) -> dict[str, Any] | None:
    """The parse data of our user turn, found by message id.

    A fallback (action_default_fallback) reverts the user turn, so `latest_message` may not
    be ours; the UserUttered event stays in the event list.
    """
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered) and event.message_id == message_id:
            data = event.parse_data or {}
            intent = data.get("intent") or {}
            return {
                "text": data.get("text", event.text),
                "intent": {
                    "name": intent.get("name"),
                    "confidence": float(intent.get("confidence") or 0.0),
                },
                "intent_ranking": [
                    {"name": r.get("name"), "confidence": float(r.get("confidence") or 0.0)}
                    for r in (data.get("intent_ranking") or [])[:RANKING_LENGTH]
                ],
                "entities": [
                    {
                        "entity": e.get("entity"),
                        "value": e.get("value"),
                        "start": e.get("start"),
                        "end": e.get("end"),
                        "extractor": e.get("extractor"),
                    }
                    for e in (data.get("entities") or [])
                ],
            }
    return None


def _latest_action(tracker: DialogueStateTracker, message_id: str) -> str | None:
    """The last action other than action_listen run after our user turn, if any."""
    latest: str | None = None
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered) and event.message_id == message_id:
            return latest
        if (
            latest is None
            and isinstance(event, ActionExecuted)
            and event.action_name
            and event.action_name != ACTION_LISTEN
        ):
            latest = event.action_name
    return None


def _actions_after(tracker: DialogueStateTracker, message_id: str) -> list[str]:
    """Every action (but action_listen) run after our user turn, in order."""
    actions: list[str] = []
    for event in reversed(tracker.events):
        if isinstance(event, UserUttered) and event.message_id == message_id:
            return list(reversed(actions))
        if isinstance(event, ActionExecuted) and event.action_name not in (None, ACTION_LISTEN):
            actions.append(str(event.action_name))
    return []


def _has_turn(tracker: DialogueStateTracker, message_id: str) -> bool:
    """Whether this conversation already processed the user message with this id."""
    return any(
        isinstance(event, UserUttered) and event.message_id == message_id
        for event in tracker.events
    )


def _bot_messages_after(tracker: DialogueStateTracker, message_id: str) -> list[dict[str, Any]]:
    """What the bot said in reply to our user turn (up to the next user turn), as Rasa handed it
    to the output channel then (BotUttered.message(), see MessageProcessor._send_bot_messages)."""
    said: list[dict[str, Any]] = []
    found = False
    for event in tracker.events:
        if isinstance(event, UserUttered):
            if found:
                break
            found = event.message_id == message_id
        elif found and isinstance(event, BotUttered):
            said.append(event.message())
    return said


def _events(body: dict[str, Any], slot_names: set[str]) -> list[Event]:
    raw_events = body.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise BadRequest("'events' must be a non-empty list")
    events: list[Event] = []
    for raw in raw_events:
        kind = raw.get("event") if isinstance(raw, dict) else None
        if kind == "pause":
            events.append(ConversationPaused())
        elif kind == "resume":
            events.append(ConversationResumed())
        elif kind == "slot":
            name = raw.get("name")
            if not isinstance(name, str) or name not in slot_names:
                raise BadRequest(f"unknown slot {name!r}")
            events.append(SlotSet(name, raw.get("value")))
        else:
            raise BadRequest("only 'pause', 'resume' and 'slot' events are accepted")
    return events


def _error(status: int, error: str, detail: str | None = None) -> HTTPResponse:
    body: dict[str, Any] = {"error": error}
    if detail:
        body["detail"] = detail
    return response.json(body, status=status)


class GatewayInput(InputChannel):
    """The service's input channel (see the module docstring for the protocol)."""

    @classmethod
    def name(cls) -> str:
        """Routes live under /webhooks/tratativa/."""
        return "tratativa"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> GatewayInput:
        """Reads `secret` from credentials.yml (`secret: ${RASA_GATEWAY_SECRET}`)."""
        if not credentials:
            cls.raise_missing_credentials_exception()
        secret = str(credentials.get("secret") or "")
        if not secret:
            raise RasaException("the tratativa gateway needs a non-empty 'secret'")
        return cls(secret)

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _authorized(self, request: Request) -> bool:
        given = request.headers.get(SECRET_HEADER, "")
        return hmac.compare_digest(given.encode(), self._secret)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        """The gateway's routes."""
        gateway = Blueprint("tratativa_gateway", __name__)

        def guarded(
            handler: Callable[[Request], Awaitable[HTTPResponse]],
        ) -> Callable[[Request], Awaitable[HTTPResponse]]:
            async def run(request: Request) -> HTTPResponse:
                if not self._authorized(request):
                    return _error(401, "unauthorized")
                agent = getattr(request.app.ctx, "agent", None)
                if agent is None or not agent.is_ready():
                    return _error(503, "model_not_ready")
                try:
                    return await handler(request)
                except BadRequest as exc:
                    return _error(400, "bad_request", str(exc))
                except Exception as exc:
                    logger.exception("tratativa gateway: %s failed", request.path)
                    return _error(500, type(exc).__name__)

            run.__name__ = handler.__name__
            return run

        @gateway.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            agent = getattr(request.app.ctx, "agent", None)
            if agent is None or not agent.is_ready():
                return response.json({"status": "loading"}, status=503)
            return response.json({"status": "ok"})

        async def receive(request: Request) -> HTTPResponse:
            body = _json_body(request)
            sender = _required_string(body, "sender")
            message_id = _required_string(body, "message_id")
            channel = body.get("channel", "whatsapp")
            if channel not in CHANNELS:
                raise BadRequest(f"'channel' must be one of {sorted(CHANNELS)}")
            text = body.get("message")
            if text is None:
                text = ""
            if not isinstance(text, str):
                raise BadRequest("'message' must be a string")
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise BadRequest("'metadata' must be an object")

            output = GatewayOutput(channel)
            agent = request.app.ctx.agent
            # What agent.handle_message does (on_new_message), with the look-up for an already
            # processed message id under the same conversation lock: a turn is run once.
            async with agent.lock_store.lock(sender):
                tracker = await agent.processor.get_tracker(sender)
                replayed = _has_turn(tracker, message_id)
                if replayed:
                    # The service asks again when it could not commit what we answered (a
                    # crash, an expired lease): answer the same, run no action again.
                    logger.info("tratativa gateway: replaying turn %s of %s", message_id, sender)
                    for bot_message in _bot_messages_after(tracker, message_id):
                        await output.send_response(sender, bot_message)
                else:
                    await agent.processor.handle_message(
                        UserMessage(
                            strip_command(text),
                            output,
                            sender,
                            input_channel=self.name(),
                            message_id=message_id,
                            metadata={**metadata, "channel": channel},
                        )
                    )
                    tracker = await agent.processor.get_tracker(sender)
            return response.json(
                {
                    "messages": [
                        {key: m[key] for key in MESSAGE_KEYS if m.get(key) is not None}
                        for m in output.messages
                    ],
                    "nlu": _nlu_reading(tracker, message_id),
                    "paused": tracker.is_paused(),
                    "latest_action": _latest_action(tracker, message_id),
                    "actions": _actions_after(tracker, message_id),
                    "replayed": replayed,
                }
            )

        async def append_events(request: Request) -> HTTPResponse:
            body = _json_body(request)
            sender = _required_string(body, "sender")
            agent = request.app.ctx.agent
            events = _events(body, {slot.name for slot in agent.domain.slots})
            async with agent.lock_store.lock(sender):
                tracker = await agent.processor.fetch_tracker_with_initial_session(sender)
                for event in events:
                    tracker.update(event, agent.domain)
                await agent.tracker_store.save(tracker)
            return response.json({"paused": tracker.is_paused()})

        gateway.add_route(guarded(receive), "/webhook", methods=["POST"], name="receive")
        gateway.add_route(guarded(append_events), "/events", methods=["POST"], name="append_events")
        return gateway
