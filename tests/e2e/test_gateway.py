"""The gateway channel (bot/gateway.py) on a real Rasa server with the trained model."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import RasaServer

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
INTENTS = frozenset(yaml.safe_load((REPO_ROOT / "domain.yml").read_text())["intents"])
FALLBACK = "nlu_fallback"


def _sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def _say(
    server: RasaServer, sender: str, text: str, *, channel: str = "whatsapp"
) -> httpx.Response:
    return httpx.post(
        server.webhook,
        json={
            "sender": sender,
            "message": text,
            "message_id": f"in-{uuid.uuid4().hex}",
            "channel": channel,
            "metadata": {"case_id": 1},
        },
        headers={"X-Tratativa-Secret": server.secret},
        timeout=60.0,
    )


def _events(server: RasaServer, sender: str, events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        server.events,
        json={"sender": sender, "events": events},
        headers={"X-Tratativa-Secret": server.secret},
        timeout=60.0,
    )


def test_health_needs_no_secret(rasa_server: RasaServer) -> None:
    answer = httpx.get(rasa_server.health, timeout=10.0)

    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


@pytest.mark.parametrize("headers", [{}, {"X-Tratativa-Secret": "wrong"}])
def test_wrong_secret_is_refused(rasa_server: RasaServer, headers: dict[str, str]) -> None:
    body = {"sender": _sender(), "message": "oi", "message_id": "in-1", "channel": "whatsapp"}

    webhook = httpx.post(rasa_server.webhook, json=body, headers=headers, timeout=10.0)
    events = httpx.post(
        rasa_server.events,
        json={"sender": body["sender"], "events": [{"event": "pause"}]},
        headers=headers,
        timeout=10.0,
    )

    assert webhook.status_code == 401
    assert webhook.json() == {"error": "unauthorized"}
    assert events.status_code == 401


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"[]",
        b'{"message": "oi", "message_id": "in-1"}',
        b'{"sender": "conv-1", "message": "oi"}',
        b'{"sender": "conv-1", "message": "oi", "message_id": "in-1", "channel": "sms"}',
        b'{"sender": "conv-1", "message": 5, "message_id": "in-1"}',
    ],
)
def test_malformed_body_is_400(rasa_server: RasaServer, content: bytes) -> None:
    answer = httpx.post(
        rasa_server.webhook,
        content=content,
        headers={"X-Tratativa-Secret": rasa_server.secret, "Content-Type": "application/json"},
        timeout=10.0,
    )

    assert answer.status_code == 400
    assert "error" in answer.json()


@pytest.mark.parametrize(
    "events",
    [[], [{"event": "restart"}], [{"event": "slot", "name": "no_such_slot", "value": 1}]],
)
def test_only_pause_resume_and_known_slots_are_accepted(
    rasa_server: RasaServer, events: list[dict[str, Any]]
) -> None:
    assert _events(rasa_server, _sender(), events).status_code == 400


def test_message_returns_messages_and_reading(rasa_server: RasaServer) -> None:
    answer = _say(rasa_server, _sender(), "oi, bom dia")

    assert answer.status_code == 200
    body = answer.json()
    assert isinstance(body["messages"], list)
    assert body["paused"] is False
    assert body["nlu"]["text"] == "oi, bom dia"
    assert body["nlu"]["intent"]["name"] in INTENTS | {FALLBACK}
    assert 0.0 <= body["nlu"]["intent"]["confidence"] <= 1.0
    assert 1 <= len(body["nlu"]["intent_ranking"]) <= 5


def test_entities_come_from_the_raw_text(rasa_server: RasaServer) -> None:
    text = "meu cpf é 145.382.206-20"

    nlu = _say(rasa_server, _sender(), text).json()["nlu"]

    assert {
        "entity": "cpf",
        "value": "14538220620",
        "start": 10,
        "end": 24,
        "extractor": "IdentifierEntityExtractor",
    } in nlu["entities"]


@pytest.mark.parametrize("text", ["/request_human", "  //request_human", "/restart"])
def test_slash_commands_cannot_inject_intents(rasa_server: RasaServer, text: str) -> None:
    answer = _say(rasa_server, _sender(), text)

    assert answer.status_code == 200
    nlu = answer.json()["nlu"]
    assert not nlu["text"].startswith("/")
    assert nlu["text"] == text.strip().lstrip("/")
    assert nlu["intent"]["confidence"] < 1.0


def test_slash_only_message_is_empty_text(rasa_server: RasaServer) -> None:
    answer = _say(rasa_server, _sender(), "/")

    assert answer.status_code == 200
    assert answer.json()["nlu"]["text"] == ""


def test_pause_silences_the_bot_but_keeps_reading(rasa_server: RasaServer) -> None:
    sender = _sender()
    assert _say(rasa_server, sender, "oi").json()["paused"] is False

    paused = _events(rasa_server, sender, [{"event": "pause"}])
    assert paused.status_code == 200
    assert paused.json() == {"paused": True}

    while_paused = _say(rasa_server, sender, "quanto é pra resolver?").json()
    assert while_paused["paused"] is True
    assert while_paused["messages"] == []
    assert while_paused["nlu"]["intent"]["name"] in INTENTS | {FALLBACK}
    assert while_paused["latest_action"] is None

    resumed = _events(rasa_server, sender, [{"event": "resume"}])
    assert resumed.json() == {"paused": False}
    assert _say(rasa_server, sender, "ok").json()["paused"] is False


def test_restart_text_does_not_lift_a_pause(rasa_server: RasaServer) -> None:
    sender = _sender()
    _events(rasa_server, sender, [{"event": "pause"}])

    answer = _say(rasa_server, sender, "/restart").json()

    assert answer["paused"] is True
    assert answer["messages"] == []


def _variants(response: str) -> tuple[set[str], set[str]]:
    domain = yaml.safe_load((REPO_ROOT / "domain.yml").read_text())
    variants = domain.get("responses", {}).get(response, [])
    email = {v["text"].strip() for v in variants if v.get("channel") == "email"}
    default = {v["text"].strip() for v in variants if "channel" not in v}
    return email, default


def test_email_conversations_get_the_email_variant(rasa_server: RasaServer) -> None:
    email_texts, default_texts = _variants("utter_goodbye")
    if not email_texts or not default_texts:
        pytest.skip("domain.yml has no e-mail variant of utter_goodbye")

    by_email = _say(rasa_server, _sender(), "tchau, até mais", channel="email").json()
    by_whatsapp = _say(rasa_server, _sender(), "tchau, até mais").json()

    assert by_email["latest_action"] == "utter_goodbye"
    assert len(by_email["messages"]) == 1
    assert by_email["messages"][0]["text"] in email_texts
    assert len(by_whatsapp["messages"]) == 1
    assert by_whatsapp["messages"][0]["text"] in default_texts
