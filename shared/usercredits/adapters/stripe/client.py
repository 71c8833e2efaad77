"""The one ``stripe.StripeClient`` factory (keys from Secrets Manager) and the translation of Stripe failures.

``stripe`` itself (and Powertools' parameters utility) are imported inside the functions that use them, so importing
the module costs nothing at cold start: the first request that builds a client pays for the ``stripe`` import (~40 ms
after ``boto3``).

Errors are translated at the boundary (``raise ... from exc``), with messages built from Stripe's structured fields
only (error type and codes), never from its free text, card details or the API key:

- a connection failure, a timeout, 409 (Stripe's lock timeout on a concurrent request), 429 or a 5xx
  → ``UnavailableError`` (the caller may retry; the idempotency key makes that safe);
- every other ``stripe.StripeError`` (card errors, invalid requests, authentication...) → ``PaymentGatewayError``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from usercredits.errors import PaymentGatewayError, UnavailableError

if TYPE_CHECKING:
    import stripe

Json = dict[str, Any]

#: Page size of the listings read (every page is read).
LIST_LIMIT = 100
#: How long Powertools keeps the Stripe secret in the container before reading Secrets Manager again.
SECRET_MAX_AGE_SECONDS = 300
#: Secrets Manager error codes worth a retry (anything else means the secret is missing or not readable).
_RETRYABLE_SECRET_ERRORS = frozenset(
    {"ThrottlingException", "RequestLimitExceeded", "InternalServiceError", "InternalFailure", "ServiceUnavailable"}
)


@dataclass(frozen=True)
class StripeKeys:
    """The Stripe secret's content: ``{"secretKey": "sk_...", "webhookSecret": "whsec_..."}``.

    ``webhook_secret`` may be missing while a deployment is being set up (the endpoint's secret only exists once its
    URL is registered with Stripe); the webhook function asks for it with ``require_webhook_secret()``.
    """

    secret_key: str | None = field(repr=False)
    webhook_secret: str | None = field(repr=False)

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise PaymentGatewayError("Stripe is not configured: the secret has no secretKey")
        return self.secret_key

    def require_webhook_secret(self) -> str:
        if not self.webhook_secret:
            raise PaymentGatewayError("Stripe is not configured: the secret has no webhookSecret")
        return self.webhook_secret


def load_stripe_keys(secret_name: str, *, max_age: int = SECRET_MAX_AGE_SECONDS) -> StripeKeys:
    """Read the JSON secret ``secret_name`` from Secrets Manager (cached ``max_age`` seconds per container)."""
    from aws_lambda_powertools.utilities import parameters

    if not secret_name:
        raise PaymentGatewayError("Stripe is not configured: STRIPE_SECRET_NAME is empty")
    try:
        value = parameters.get_secret(secret_name, transform="json", max_age=max_age)
    except parameters.exceptions.TransformParameterError as exc:
        raise PaymentGatewayError("Stripe is not configured: the secret is not a JSON object") from exc
    except parameters.exceptions.GetParameterError as exc:
        if _retryable_secret_failure(exc):
            raise UnavailableError("Secrets Manager is unavailable; retry shortly") from exc
        raise PaymentGatewayError("Stripe is not configured: the secret could not be read") from exc
    if not isinstance(value, dict):
        raise PaymentGatewayError("Stripe is not configured: the secret is not a JSON object")
    secret_key, webhook_secret = value.get("secretKey"), value.get("webhookSecret")
    return StripeKeys(
        secret_key=secret_key if isinstance(secret_key, str) and secret_key else None,
        webhook_secret=webhook_secret if isinstance(webhook_secret, str) and webhook_secret else None,
    )


def load_webhook_secret(secret_name: str) -> str:
    """The secret's ``webhookSecret`` (cached like ``load_stripe_keys``); ``PaymentGatewayError`` when unset."""
    return load_stripe_keys(secret_name).require_webhook_secret()


def _retryable_secret_failure(exc: Exception) -> bool:
    # Powertools raises GetParameterError inside its `except`, so the boto error is the implicit context.
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code") in _RETRYABLE_SECRET_ERRORS
    return isinstance(cause, BotoConnectionError | HTTPClientError)  # unreachable endpoint, timeouts


def new_client(
    secret_key: str, *, api_base: str | None = None, max_network_retries: int = 2, timeout_seconds: float = 4.0
) -> stripe.StripeClient:
    """A ``stripe.StripeClient`` for ``secret_key``.

    ``api_base`` points it at another API host (the tests' fake servers). ``timeout_seconds`` bounds each HTTP
    attempt, retried ``max_network_retries`` times by the SDK with the same idempotency key; with the defaults the
    worst case stays under the functions' 15 s timeout.
    """
    import stripe

    if not secret_key:
        raise PaymentGatewayError("Stripe is not configured: empty secret key")
    return stripe.StripeClient(
        secret_key,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=max_network_retries,
        http_client=stripe.RequestsClient(timeout=timeout_seconds),
    )


def raise_translated(exc: stripe.StripeError, doing: str) -> NoReturn:
    """Raise the domain error for a Stripe failure (see the module docstring)."""
    import stripe

    status = exc.http_status
    if (
        isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError)
        or status in {409, 429}
        or (status is not None and status >= 500)
    ):
        raise UnavailableError(f"Stripe is unavailable; could not {doing}", retry_after=_retry_after(exc)) from exc
    error = exc.error
    parts = [str(getattr(error, "type", None) or type(exc).__name__)]
    parts += [str(code) for code in (exc.code, getattr(error, "decline_code", None)) if code]
    raise PaymentGatewayError(f"Stripe refused to {doing} ({': '.join(parts)})") from exc


def _retry_after(exc: stripe.StripeError) -> int:
    value = (exc.headers or {}).get("retry-after") or (exc.headers or {}).get("Retry-After")
    try:
        return max(1, min(int(str(value)), 60))
    except ValueError:
        return 1


def call[T](doing: str, request: Callable[[], T]) -> T:
    """``request()``, its Stripe failures translated."""
    import stripe

    try:
        return request()
    except stripe.StripeError as exc:
        raise_translated(exc, doing)


def call_or_missing(doing: str, request: Callable[[], Any]) -> Json | None:
    """The object ``request()`` reads, as a dict, or None when Stripe answers 404 ``resource_missing``."""
    import stripe

    try:
        found: Json = request().to_dict()
    except stripe.InvalidRequestError as exc:
        if exc.http_status == 404 or exc.code == "resource_missing":
            return None
        raise_translated(exc, doing)
    except stripe.StripeError as exc:
        raise_translated(exc, doing)
    return found


def first_wanted(
    doing: str, request: Callable[[], Any], wanted: Callable[[Json], bool], *, translate: bool = True
) -> Json | None:
    """The first listed (or searched) object that is ``wanted``, reading further pages only as needed."""
    import stripe

    try:
        for item in request().auto_paging_iter():
            found: Json = item.to_dict()
            if wanted(found):
                return found
        return None
    except stripe.StripeError as exc:
        if not translate:
            raise
        raise_translated(exc, doing)


def every_item(page: stripe.ListObject[Any], doing: str) -> list[Json]:
    """Every object of a listing, following its pages."""
    import stripe

    try:
        return [item.to_dict() for item in page.auto_paging_iter()]
    except stripe.StripeError as exc:
        raise_translated(exc, doing)


def create_or_find[C, F](
    doing: str,
    create: Callable[[str], C],
    *,
    key: str,
    params: Mapping[str, Any],
    find: Callable[[], F | None],
) -> tuple[C | None, F | None]:
    """Create with the port call's ``key``: ``(created, None)``. A retry whose key was first used with other
    parameters (the local data changed after a lost answer) gets Stripe's idempotency error: what that first call made
    is then looked for (``find``) and returned as ``(None, found)`` for the caller to adopt; when it made nothing, the
    object is created under a key that covers the parameters."""
    import stripe

    try:
        return create(key), None
    except stripe.IdempotencyError:
        pass
    except stripe.StripeError as exc:
        raise_translated(exc, doing)
    found = find()
    if found is not None:
        return None, found
    retry_key = step_key(key, "retry", params)
    return call(doing, lambda: create(retry_key)), None


def step_key(key: str, step: str, params: Mapping[str, Any]) -> str:
    """The idempotency key of one call made for a port call: the port's key, the step, and a digest of what it sends."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{key}:{step}:{digest}"
