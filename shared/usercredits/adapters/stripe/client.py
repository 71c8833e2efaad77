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
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from usercredits.errors import DomainError, PaymentGatewayError, UnavailableError

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


#: How long a failed build (a missing or broken Stripe secret, Secrets Manager unavailable) is answered from memory.
FAILURE_MEMORY_SECONDS = 10.0


class Refreshing[T]:
    """A value built on first use and rebuilt every ``refresh_seconds``; a failed build is remembered for
    ``failure_seconds`` and raised again without trying again on every request (see ``client_source``)."""

    def __init__(
        self,
        build: Callable[[], T],
        *,
        refresh_seconds: float = SECRET_MAX_AGE_SECONDS,
        failure_seconds: float = FAILURE_MEMORY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self._refresh_seconds = refresh_seconds
        self._failure_seconds = failure_seconds
        self._monotonic = monotonic
        self._value: T | None = None
        self._built_at = 0.0
        self._failure: DomainError | None = None
        self._failed_at = 0.0

    def get(self) -> T:
        """The value, built or rebuilt if due; the remembered failure while it is fresh."""
        now = self._monotonic()
        if self._value is not None and now - self._built_at < self._refresh_seconds:
            return self._value
        if self._failure is not None and now - self._failed_at < self._failure_seconds:
            raise self._failure
        try:
            value = self._build()
        except DomainError as exc:  # PaymentGatewayError (not configured), UnavailableError (Secrets Manager down)
            self._failure, self._failed_at = exc, now
            raise
        self._value, self._built_at, self._failure = value, now, None
        return value


def client_source(
    secret_key: str | Callable[[], str],
    *,
    api_base: str | None = None,
    max_network_retries: int,
    timeout_seconds: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> Refreshing[stripe.StripeClient]:
    """Where an adapter gets its ``stripe.StripeClient``: one client for a given key (built now: an empty key fails
    here), or, for a key read from the secret (``secret_key`` a callable), a client built on the first call to Stripe
    and rebuilt every 5 minutes as the cached secret expires, so a rotated key is picked up without recycling the
    container, and a missing or broken secret neither fails the routes that never call Stripe nor is read again on
    every request that does. ``monotonic``: the container's clock (tests move it)."""

    def build(key: str) -> stripe.StripeClient:
        return new_client(
            key, api_base=api_base, max_network_retries=max_network_retries, timeout_seconds=timeout_seconds
        )

    if isinstance(secret_key, str):
        client = build(secret_key)
        return Refreshing(lambda: client, refresh_seconds=math.inf)
    return Refreshing(lambda: build(secret_key()), monotonic=monotonic)


class StripeResource:
    """Base of the Stripe adapters: ``_client`` is the current client of their ``client_source``."""

    _clients: Refreshing[stripe.StripeClient]

    @property
    def _client(self) -> stripe.StripeClient:
        return self._clients.get()


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
