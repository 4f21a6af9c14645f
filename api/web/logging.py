"""Keep secrets out of logs: Rasa sends the action-server token as a query parameter; the
360dialog, Z-API and UltraMsg webhooks carry our secret in their path, and Z-API's API its
instance token (`/instances/{id}/token/{token}/…`, which httpx logs at INFO)."""

from __future__ import annotations

import logging
import re

_SECRET_QUERY = re.compile(r"(?i)([?&](?:token|secret|password|auth_token)=)[^&\s]*")


_SECRET_PATH = re.compile(r"(/webhooks/(?:360dialog|zapi|ultramsg)/|/token/)[^/?\s\"]+")


def redact(text: str) -> str:
    return _SECRET_PATH.sub(r"\1***", _SECRET_QUERY.sub(r"\1***", text))


class RedactSecrets(logging.Filter):
    """Rewrites uvicorn's access-log path argument with secret query values masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact(a)
                if isinstance(a, str)
                else redact(str(a))
                if type(a).__name__ == "URL"  # httpx.URL, as httpx logs its requests
                else a
                for a in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_log_redaction() -> None:
    for name in ("uvicorn.access", "httpx"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
