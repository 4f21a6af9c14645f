"""The one error hierarchy: services raise these, the web layer renders them."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An error with a stable code, an HTTP status and a message safe to show a user."""

    code = "app_error"
    status_code = 400

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


class ValidationFailed(AppError):
    code = "validation_failed"
    status_code = 422


class PayloadTooLarge(AppError):
    code = "payload_too_large"
    status_code = 413


class NotFound(AppError):
    code = "not_found"
    status_code = 404


class Conflict(AppError):
    code = "conflict"
    status_code = 409


class AuthenticationRequired(AppError):
    code = "authentication_required"
    status_code = 401


class PermissionDenied(AppError):
    code = "permission_denied"
    status_code = 403


class TooManyRequests(AppError):
    """A limit was hit; `retry_after` (seconds) becomes the Retry-After header."""

    code = "too_many_requests"
    status_code = 429

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.retry_after = retry_after


class ConfigurationError(AppError):
    """The service is configured in a way it must not run with (said in one line)."""

    code = "configuration_error"
    status_code = 500


class IllegalTransition(Conflict):
    code = "illegal_transition"


class AppendOnlyViolation(AppError):
    code = "append_only"
    status_code = 409


class ProviderError(AppError):
    """A provider's server (a mailbox, a messaging API) refused a command or the connection
    broke; the caller reconnects or retries."""

    code = "provider_error"
    status_code = 502


class ChannelDeliveryError(AppError):
    """A provider refused or failed to take a message."""

    code = "channel_delivery_error"
    status_code = 502

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        provider_code: str | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message, retryable=retryable, provider_code=provider_code)
        self.retryable = retryable
        self.provider_code = provider_code
        # The provider's Retry-After: no retry may happen sooner.
        self.retry_after_seconds = retry_after_seconds
