"""Domain errors carry a message written for the person using the service."""

from __future__ import annotations


class DomainError(Exception):
    """A rule was broken. `message` is shown to the user; `field` names the form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(DomainError):
    pass


class ImmutableRecord(DomainError):
    """Raised when code tries to change or delete a ledger entry or audit event."""
