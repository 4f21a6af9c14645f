import logging

import pytest

from api.web.logging import RedactSecrets, redact

pytestmark = pytest.mark.unit


def test_secret_query_values_are_masked_in_access_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/actions/webhook?token=s3cr3t&x=1", "1.1", 200),
        None,
    )
    assert RedactSecrets().filter(record)
    assert "s3cr3t" not in record.getMessage()
    assert "/actions/webhook?token=***&x=1" in record.getMessage()
    assert redact("/p?mid=42") == "/p?mid=42"
