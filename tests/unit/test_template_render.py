"""Templates render strictly: a missing variable is an error, never a blank."""

from __future__ import annotations

import pytest

from api.templates.service import (
    TemplateVariableMissing,
    get_template,
    render,
)

pytestmark = pytest.mark.unit


def test_a_missing_template_variable_is_an_error_never_a_blank() -> None:
    template = get_template("link_pagamento")
    with pytest.raises(TemplateVariableMissing) as info:
        render(template, {"infringer_name": "Ana", "case_ref": "INF-2026-000001", "amount": ""})
    assert info.value.details["missing"] == ["amount", "payment_link"]
