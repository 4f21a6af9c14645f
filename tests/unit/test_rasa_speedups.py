"""bot/speedups.py validates an action server response exactly as Rasa's own jsonschema call
does (run in the Rasa environment, where jsonschema and Rasa live): the same responses pass, the
same are refused with the same message, and Rasa's RemoteAction uses it once the gateway
channel is loaded."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
RASA_PYTHON = ROOT / ".venv-rasa" / "bin" / "python"

SCRIPT = r"""
import json
import jsonschema
from rasa.core.actions.action import RemoteAction

original = jsonschema.validate
import bot.gateway  # installs the speed-up, as the Rasa server does when it loads the channel
from bot import speedups

schema = RemoteAction.action_response_format_spec()
responses = [
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "amount", "value": 1800}], "responses": [{"text": "ok"}]},
    {"events": [{"event": "bot", "text": "oi"}]},
    {"events": "not a list"},
    {"responses": ["not an object"]},
    {"events": [{"event": "no_such_event"}]},
    {"events": [{"name": "no event key"}]},
]

def outcome(validate, response):
    try:
        validate(response, schema)
        return "valid"
    except jsonschema.ValidationError as error:
        return "invalid: " + error.message

same = [outcome(original, r) == outcome(speedups.validate, r) for r in responses]

from rasa.shared.core.events import Event, UserUttered, deserialise_events
stored = [
    {"event": "user", "text": "oi", "parse_data": {"intent": {"name": "greet"}}},
    {"event": "slot", "name": "offer_amount", "value": 1800},
    {"event": "action", "name": "action_listen"},
    {"event": "bot", "text": "Olá"},
    {"event": "pause"},
    {"event": "user", "text": "de novo", "parse_data": {"intent": {"name": "affirm"}}},
]
events_same = [
    type(a) is type(b) and a == b
    for a, b in zip(deserialise_events(stored), [Event.from_parameters(e) for e in stored])
] + [speedups._original_resolve("slot") is Event.resolve_by_type("slot")]
try:
    Event.resolve_by_type("no_such_event")
    unknown_refused = False
except ValueError:
    unknown_refused = True
default_kept = Event.resolve_by_type("no_such_event", UserUttered) is UserUttered

kinds = [outcome(speedups.validate, r).split(":")[0] for r in responses]
action = RemoteAction("action_probe", None)
try:
    action._validate_action_result({"events": "not a list"})
    refused_by_rasa = False
except Exception:
    refused_by_rasa = True
print(json.dumps({
    "installed": jsonschema.validate is speedups.validate,
    "same": same,
    "kinds": kinds,
    "rasa_accepts_valid": action._validate_action_result({"events": [], "responses": []}),
    "rasa_refuses_invalid": refused_by_rasa,
    "schemas_checked": len(speedups._checked),
    "events_same": events_same,
    "unknown_refused": unknown_refused,
    "default_kept": default_kept,
    "cached": sorted(speedups._resolved),
}))
"""


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    if not RASA_PYTHON.exists():
        pytest.skip("no Rasa environment (.venv-rasa); run `make .venv-rasa/.installed`")
    run = subprocess.run(
        [str(RASA_PYTHON), "-W", "ignore", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return dict(json.loads(run.stdout.strip().splitlines()[-1]))


def test_loading_the_gateway_installs_the_cached_validator(result: dict[str, object]) -> None:
    assert result["installed"] is True


def test_it_accepts_and_refuses_exactly_what_jsonschema_does(result: dict[str, object]) -> None:
    assert result["same"] == [True] * 7
    assert result["kinds"][:3] == ["valid"] * 3
    assert "invalid" in result["kinds"][3:] and result["kinds"][3] == "invalid"
    assert result["schemas_checked"] == 1


def test_stored_events_resolve_to_the_same_classes(result: dict[str, object]) -> None:
    """Events come back from the tracker store as the same classes and values; an unknown type
    name is still refused (or given its default), and is not remembered."""
    assert result["events_same"] == [True] * 7
    assert result["unknown_refused"] is True
    assert result["default_kept"] is True
    assert result["cached"] == ["action", "bot", "pause", "slot", "user"]


def test_rasa_still_refuses_an_invalid_action_response(result: dict[str, object]) -> None:
    assert result["rasa_accepts_valid"] is True
    assert result["rasa_refuses_invalid"] is True
