"""Speed-ups for Rasa 3.6 itself, installed when the Rasa server loads the gateway channel.

Rasa validates every action server response with `jsonschema.validate(result, schema)`
(rasa/core/actions/action.py, RemoteAction._validate_action_result). That function checks the
*schema* against its metaschema on every call before validating the response; the schema is a
constant, and checking it was about two thirds of Rasa's CPU per turn on our 2-core machine
(py-spy under `make bench`). `validate` below does the same validation — the schema is still
checked, once per distinct schema, and the instance is validated in full with the same error
(`best_match`) — so an invalid response is refused exactly as before.

Rasa also turns every stored event back into its class with `Event.resolve_by_type`, which walks
every subclass of Event (recursively, checking each for abstractness) to find the one with that
type name: the in-memory tracker store deserialises the whole tracker on every retrieval, so the
walk ran for every event of the conversation several times per turn (~9 % of Rasa's CPU at
10 msg/s). `resolve_by_type` below remembers the class each type name resolved to; a name it
has not seen (or an unknown one, with its default or its error) goes to Rasa's own.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from jsonschema import exceptions, validators

_original_validate = jsonschema.validate
_checked: dict[str, Any] = {}
_MAX_SCHEMAS = 64


def validate(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:
    """`jsonschema.validate` with the validator of each distinct schema built (and the schema
    checked) once."""
    if cls is not None or args or kwargs:
        _original_validate(instance, schema, cls, *args, **kwargs)
        return
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError):
        _original_validate(instance, schema)
        return
    validator = _checked.get(key)
    if validator is None:
        validator_class = validators.validator_for(schema)
        validator_class.check_schema(schema)
        validator = validator_class(schema)
        if len(_checked) < _MAX_SCHEMAS:
            _checked[key] = validator
    error = exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise error


_resolved: dict[str, Any] = {}
_original_resolve: Any = None


def resolve_by_type(type_name: str, default: Any = None) -> Any:
    """`Event.resolve_by_type`, remembering the class each type name resolved to."""
    found = _resolved.get(type_name)
    if found is not None:
        return found
    resolved = _original_resolve(type_name, default)
    if resolved is not None and resolved is not default and resolved.type_name == type_name:
        _resolved[type_name] = resolved
    return resolved


def install() -> None:
    """Make Rasa's `from jsonschema import validate` (done at each call) find ours, and its
    Event.resolve_by_type remember what it resolved."""
    global _original_resolve
    jsonschema.validate = validate
    from rasa.shared.core.events import Event

    if _original_resolve is None:
        _original_resolve = Event.resolve_by_type
        Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[assignment,method-assign]
