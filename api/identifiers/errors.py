"""The error raised when a text is not a valid identifier."""

from __future__ import annotations


class InvalidIdentifier(ValueError):
    """A text that is not a valid identifier of the given kind (cpf, cnpj, phone, amount, ...)."""

    def __init__(self, kind: str, reason: str = "", *, value: str | None = None) -> None:
        self.kind = kind
        self.reason = reason
        self.value = value
        message = f"invalid {kind}"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message)
