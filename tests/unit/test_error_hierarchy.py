"""One error hierarchy (api/errors.py's AppError): no second exception root, no second class of
one name (there were two PayloadTooLarge), ImapError inside it."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from api.channels.email.imap import ImapError
from api.errors import AppError, ProviderError

pytestmark = pytest.mark.unit

API = Path(__file__).resolve().parents[2] / "api"
CLASS = re.compile(r"^class (\w+)\(([^)]*)\)", re.MULTILINE)
# Parsing helpers for identifiers raise ValueError (pure functions, used by pydantic validators).
OTHER_ROOTS_ALLOWED = {"InvalidIdentifier"}


def _classes() -> list[tuple[str, str, str]]:
    return [
        (str(path.relative_to(API)), name, bases)
        for path in API.rglob("*.py")
        if "migrations" not in path.parts
        for name, bases in CLASS.findall(path.read_text(encoding="utf-8"))
    ]


def test_errors_derive_from_app_error_only() -> None:
    roots = {"Exception", "RuntimeError", "ValueError", "OSError", "TimeoutError", "LookupError"}
    second_roots = [
        f"{path}: {name}({bases})"
        for path, name, bases in _classes()
        if name != "AppError"
        and name not in OTHER_ROOTS_ALLOWED
        and {b.strip() for b in bases.split(",")} & roots
    ]
    assert second_roots == []


def test_no_error_class_is_defined_twice() -> None:
    names = Counter(
        name
        for _path, name, bases in _classes()
        if name.endswith(("Error", "Large", "Denied", "Required", "Failed", "Found"))
    )
    assert [name for name, count in names.items() if count > 1] == []


def test_imap_errors_are_provider_errors() -> None:
    error = ImapError("connection lost")
    assert isinstance(error, ProviderError) and isinstance(error, AppError)
    assert (error.code, error.status_code, error.message) == ("imap_error", 502, "connection lost")
