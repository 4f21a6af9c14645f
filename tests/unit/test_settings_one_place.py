"""Settings are read in one place (api/config.py): TEMPLATE_CONTENT_SIDS included."""

from __future__ import annotations

import re
from pathlib import Path

import pydantic
import pytest

from api.config import Settings

pytestmark = pytest.mark.unit

API = Path(__file__).resolve().parents[2] / "api"
# Reads of the environment outside api/config.py that are not settings: the CLI's debug switch
# (read while reporting an error, when Settings may be what failed) and the NLU evaluation
# passing the environment on to a Rasa subprocess.
ALLOWED = {"config.py", "cli/errors.py", "nlu_eval/runner.py"}


def test_template_content_sids_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", '{"primeiro_contato": "HX0123"}')
    assert Settings().template_content_sids == {"primeiro_contato": "HX0123"}
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", "")
    assert Settings().template_content_sids == {}


@pytest.mark.parametrize("raw", ["{not json", '["HX0123"]'])
def test_a_malformed_template_content_sids_is_refused(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv("TEMPLATE_CONTENT_SIDS", raw)
    with pytest.raises(pydantic.ValidationError, match="TEMPLATE_CONTENT_SIDS"):
        Settings()


def test_no_module_reads_the_environment_but_config() -> None:
    reads = re.compile(r"os\.environ|os\.getenv|getenv\(")
    offending = [
        str(path.relative_to(API))
        for path in API.rglob("*.py")
        if "migrations" not in path.parts
        and str(path.relative_to(API)) not in ALLOWED
        and reads.search(path.read_text(encoding="utf-8"))
    ]
    assert offending == []
