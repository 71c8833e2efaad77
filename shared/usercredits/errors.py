"""Domain errors. They carry no HTTP knowledge; ``usercredits.http`` maps them to statuses in one table."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the domain raises on purpose."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidRequestError(DomainError):
    """The request is well-formed JSON but asks for something invalid (bad quantity, unknown currency...)."""


class UnauthorizedError(DomainError):
    """No caller identity could be established."""


class ForbiddenError(DomainError):
    """The caller is known but may not do this (admin route, locked offer)."""


class NotFoundError(DomainError):
    """The thing does not exist, or belongs to someone else."""


class ConflictError(DomainError):
    """The request conflicts with the current state (wrong status, idempotency key reused with another body)."""


class InsufficientCreditsError(DomainError):
    """The balance (and the group's overdraft allowance) does not cover the spend."""


class InvalidSignatureError(DomainError):
    """A webhook's signature or payload could not be verified."""


class UnavailableError(DomainError):
    """A dependency is throttling or unreachable; the caller may retry after ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PaymentGatewayError(DomainError):
    """The payment provider refused or failed a request."""


class PersistenceError(DomainError):
    """An unexpected storage failure (not a condition check, not throttling)."""
