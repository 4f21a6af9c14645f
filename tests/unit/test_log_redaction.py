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


def test_provider_secrets_in_paths_are_masked() -> None:
    import httpx

    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", "/webhooks/zapi/s3cr3t-path", "1.1", 200),
        None,
    )
    client = logging.LogRecord(
        "httpx",
        logging.INFO,
        __file__,
        1,
        'HTTP Request: %s %s "%s %d %s"',
        (
            "POST",
            httpx.URL("https://api.z-api.io/instances/ABC/token/t0k3n/send-text"),
            "HTTP/1.1",
            200,
            "OK",
        ),
        None,
    )
    assert RedactSecrets().filter(access) and RedactSecrets().filter(client)
    assert "s3cr3t-path" not in access.getMessage()
    assert "/webhooks/zapi/***" in access.getMessage()
    assert "t0k3n" not in client.getMessage()
    assert "/instances/ABC/token/***/send-text" in client.getMessage()
