"""Turn PynamoDB/botocore failures into domain errors (throttling becomes a retryable 503, never a 500)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import PynamoDBException

from usercredits.errors import PersistenceError, UnavailableError

#: A failed condition, as a single write reports it (the exception's code) and as a transaction reports it (the
#: cancellation reason of the action whose condition failed), and a transaction another one was writing the same
#: items as (a reason, likewise).
CONDITION_FAILED_EXCEPTION = "ConditionalCheckFailedException"
CONDITION_FAILED = "ConditionalCheckFailed"
TRANSACTION_CONFLICT = "TransactionConflict"
TRANSACTION_CONFLICT_EXCEPTION = "TransactionConflictException"

_RETRYABLE = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionInProgressException",
        TRANSACTION_CONFLICT_EXCEPTION,
    }
)


def cause_code(exc: PynamoDBException) -> str | None:
    """The DynamoDB error code behind a PynamoDB exception; None when no answer came (a timeout or a refused
    connection: botocore's error then has ``response = None``, which PynamoDB's ``cause_response_code`` trips on)."""
    response = getattr(exc.cause, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def condition_failed(exc: PynamoDBException, *, or_conflict: bool = False) -> bool:
    """True when a single conditional write failed on its condition (nothing was written); ``or_conflict``: also
    when a transaction was writing the same item (the write was refused; read again and retry)."""
    codes = (
        {CONDITION_FAILED_EXCEPTION, TRANSACTION_CONFLICT_EXCEPTION} if or_conflict else {CONDITION_FAILED_EXCEPTION}
    )
    return cause_code(exc) in codes


def translate_errors[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Decorator for repository methods: throttling/timeouts -> UnavailableError, the rest -> PersistenceError."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except PynamoDBException as exc:
            raise _translate(exc) from exc

    return wrapper


#: Why a transaction's action was cancelled, when a retry can succeed (another transaction, throttling).
_TRANSIENT_REASONS = frozenset({TRANSACTION_CONFLICT, "ThrottlingError", "ProvisionedThroughputExceeded"})


def _translate(exc: PynamoDBException) -> Exception:
    code = cause_code(exc)
    if code in _RETRYABLE or code is None or _transient_cancellation(exc):
        # None: the connection itself failed (timeout, endpoint down)
        return UnavailableError(f"storage is busy ({code or 'unreachable'}); retry shortly", retry_after=1)
    return PersistenceError(f"storage error: {code}")


def _transient_cancellation(exc: PynamoDBException) -> bool:
    """A cancelled transaction whose only reasons are conflicts or throttling (nothing was written; retry)."""
    if cause_code(exc) != "TransactionCanceledException":
        return False
    reasons = {code for code in cancellation_codes(exc) if code not in (None, "None")}
    return bool(reasons) and reasons <= _TRANSIENT_REASONS


def cancellation_codes(exc: Any) -> list[str | None]:
    """The per-action reason codes of a cancelled transaction (None where the action itself was fine)."""
    reasons = getattr(exc, "cancellation_reasons", None) or []
    return [reason.code if reason is not None else None for reason in reasons]
