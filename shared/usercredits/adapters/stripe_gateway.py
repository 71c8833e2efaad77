"""The Stripe adapter of the PaymentGateway port, and Stripe webhook signature checks.

Only the ordering and webhook functions import this module. ``stripe`` itself (and Powertools' parameters utility) are
imported inside the functions that use them, so importing the module costs nothing at cold start: the first request
that builds a ``StripeGateway`` or verifies a webhook pays for the ``stripe`` import (~40 ms after ``boto3``).

Errors are translated at the boundary (``raise ... from exc``), with messages built from Stripe's structured fields
only (error type and codes), never from its free text, card details or the API key:

- a connection failure, a timeout, 409 (Stripe's lock timeout on a concurrent request), 429 or a 5xx
  → ``UnavailableError`` (the caller may retry; the idempotency key makes that safe);
- every other ``stripe.StripeError`` (card errors, invalid requests, authentication...) → ``PaymentGatewayError``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from usercredits.domain.models import DisputeStatus, IntentState, Order, PaymentIntent
from usercredits.domain.reversal import ChargeReport
from usercredits.errors import InvalidSignatureError, PaymentGatewayError, UnavailableError

if TYPE_CHECKING:
    import stripe

#: Oldest webhook timestamp accepted, in seconds (Stripe's own default; guards against replayed deliveries).
WEBHOOK_TOLERANCE_SECONDS = 300
#: How long Powertools keeps the Stripe secret in the container before reading Secrets Manager again.
SECRET_MAX_AGE_SECONDS = 300
#: Statuses an intent may have when a cancel is refused as a no-op (nothing left to cancel).
_FINAL_STATUSES = frozenset({"canceled", "succeeded"})
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


class StripeGateway:
    """PaymentGateway over ``stripe.StripeClient``.

    ``api_base`` points the client at another API host (the tests' fake server). ``timeout_seconds`` bounds each HTTP
    attempt; with the default two retries the worst case stays under the functions' 15 s timeout.
    """

    provider = "stripe"

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
    ) -> None:
        import stripe

        if not secret_key:
            raise PaymentGatewayError("Stripe is not configured: empty secret key")
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout_seconds),
        )

    def __repr__(self) -> str:
        return "StripeGateway()"

    @classmethod
    def from_secret(
        cls,
        secret_name: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 4.0,
    ) -> StripeGateway:
        """A gateway using the ``secretKey`` of the Secrets Manager JSON secret ``secret_name``."""
        return cls(
            load_stripe_keys(secret_name).require_secret_key(),
            api_base=api_base,
            max_network_retries=max_network_retries,
            timeout_seconds=timeout_seconds,
        )

    def create_intent(self, order: Order, attempt: int) -> PaymentIntent:
        """The intent collecting ``order.total`` (integer minor units, so right for jpy too) in the order's currency.

        The Stripe idempotency key is ``order-<orderId>-attempt-<attempt>``: a retried Lambda (or the SDK's own
        retries) gets the same intent back instead of a second one. Stripe keeps keys for 24 hours.
        """
        import stripe

        try:
            intent = self._client.v1.payment_intents.create(
                params={
                    "amount": order.total.amount,
                    "currency": order.total.currency,
                    "metadata": {"orderId": order.order_id, "userId": order.user_id},
                    "automatic_payment_methods": {"enabled": True},
                    "description": f"Payment for order {order.order_id}",
                },
                options={"idempotency_key": f"order-{order.order_id}-attempt-{attempt}"},
            )
        except stripe.StripeError as exc:
            _raise_translated(exc, "create the payment intent")
        if not intent.id or not intent.client_secret:
            raise PaymentGatewayError("Stripe answered a payment intent without an id or client secret")
        return PaymentIntent(provider=self.provider, payment_intent_id=intent.id, client_secret=intent.client_secret)

    def retrieve_intent(self, intent_id: str) -> IntentState:
        """The intent as Stripe has it now (status, amounts, currency, metadata, last error, next action)."""
        import stripe

        try:
            intent = self._client.v1.payment_intents.retrieve(intent_id)
        except stripe.StripeError as exc:
            _raise_translated(exc, "read the payment intent")
        return intent_state(intent.to_dict())

    def cancel_intent(self, intent_id: str) -> None:
        """Cancel an abandoned intent so it can no longer be paid.

        An intent that is already ``canceled`` or ``succeeded`` cannot be canceled; Stripe refuses with
        ``payment_intent_unexpected_state`` and that refusal is a no-op here (nothing left to cancel). NB: a
        ``succeeded`` intent means the customer paid: read it with ``retrieve_intent`` first when that matters.
        Any other refusal (e.g. a ``processing`` intent) raises ``PaymentGatewayError``.
        """
        import stripe

        try:
            self._client.v1.payment_intents.cancel(intent_id)
        except stripe.InvalidRequestError as exc:
            if exc.code == "payment_intent_unexpected_state" and _refused_intent_status(exc) in _FINAL_STATUSES:
                return
            _raise_translated(exc, "cancel the payment intent")
        except stripe.StripeError as exc:
            _raise_translated(exc, "cancel the payment intent")

    def refund_payment(self, intent_id: str, *, idempotency_key: str, metadata: dict[str, str]) -> str | None:
        """Refund what is left of the intent's charge (``reason=duplicate``); None when Stripe says it was refunded
        in full already. The idempotency key makes a retry return the same refund."""
        import stripe

        try:
            refund = self._client.v1.refunds.create(
                params={"payment_intent": intent_id, "reason": "duplicate", "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.InvalidRequestError as exc:
            if exc.code == "charge_already_refunded":
                return None
            _raise_translated(exc, "refund the payment")
        except stripe.StripeError as exc:
            _raise_translated(exc, "refund the payment")
        return str(refund.id)


def intent_state(intent: dict[str, Any]) -> IntentState:
    """The essentials of a PaymentIntent in Stripe's API shape (also the ``data.object`` of ``payment_intent.*``)."""
    error = intent.get("last_payment_error") or None
    next_action = intent.get("next_action") or None
    return IntentState(
        payment_intent_id=str(intent["id"]),
        status=str(intent.get("status") or ""),
        amount=int(intent.get("amount") or 0),
        amount_received=int(intent.get("amount_received") or 0),
        currency=str(intent.get("currency") or ""),
        metadata={str(key): str(value) for key, value in (intent.get("metadata") or {}).items()},
        last_error=_format_payment_error(error) if isinstance(error, dict) else None,
        next_action=str(next_action.get("type") or "unknown") if isinstance(next_action, dict) else None,
    )


#: Stripe dispute statuses that end a dispute in the merchant's favour (funds back, or never withdrawn).
_DISPUTE_WON = frozenset({"won", "warning_closed"})


def charge_report(kind: str, payload: dict[str, Any]) -> ChargeReport | None:
    """What a ``charge.refunded`` (a Charge) or ``charge.dispute.created|closed`` (a Dispute) event says about money
    going back; None when it names no payment intent (nothing of ours to find)."""
    intent = payload.get("payment_intent")
    intent_id = intent.get("id") if isinstance(intent, dict) else intent
    if not intent_id:
        return None
    common: dict[str, Any] = {
        "payment_intent_id": str(intent_id),
        "currency": str(payload.get("currency") or "").lower(),
        "metadata": {str(key): str(value) for key, value in (payload.get("metadata") or {}).items()},
    }
    if kind == "charge.refunded":
        return ChargeReport(**common, refunded_amount=int(payload.get("amount_refunded") or 0))
    status = str(payload.get("status") or "")
    if kind == "charge.dispute.closed":
        outcome = DisputeStatus.WON if status in _DISPUTE_WON else DisputeStatus.LOST
    elif status.startswith("warning_"):
        return None  # an inquiry: no funds were withdrawn, nothing to take back
    else:  # created: open, unless Stripe already decided it (a late delivery)
        outcome = (
            DisputeStatus.WON if status == "won" else DisputeStatus.LOST if status == "lost" else DisputeStatus.OPEN
        )
    return ChargeReport(**common, dispute_amount=int(payload.get("amount") or 0), dispute_status=outcome)


def _format_payment_error(error: dict[str, Any]) -> str:
    # The seed's history message: "<last_payment_error.message> - <type>: <code>" (no payment method details).
    text = f"{error.get('message') or 'Payment failed'} - {error.get('type') or 'unknown'}"
    return f"{text}: {error['code']}" if error.get("code") else text


def _refused_intent_status(exc: stripe.InvalidRequestError) -> str | None:
    # Stripe attaches the intent to a payment_intent_unexpected_state error.
    body = exc.json_body if isinstance(exc.json_body, dict) else {}
    intent = (body.get("error") or {}).get("payment_intent") or {}
    status = intent.get("status") if isinstance(intent, dict) else None
    return status if isinstance(status, str) else None


def _raise_translated(exc: stripe.StripeError, doing: str) -> NoReturn:
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


def verify_webhook(payload: bytes, signature_header: str | None, secret: str) -> dict[str, Any]:
    """The Stripe event in ``payload`` (the RAW request body) as a plain dict, once its signature is verified.

    Uses ``stripe.Webhook.construct_event``: the ``Stripe-Signature`` header must carry a ``v1`` HMAC-SHA256 of
    ``"<t>.<payload>"`` under ``secret`` and a timestamp at most ``WEBHOOK_TOLERANCE_SECONDS`` old. Any failure (no or
    garbled header, wrong secret, altered body, stale timestamp, not a JSON event) raises ``InvalidSignatureError``
    with a message that repeats neither the payload nor the secret.
    """
    import stripe

    if not signature_header:
        raise InvalidSignatureError("missing Stripe-Signature header")
    try:
        event = stripe.Webhook.construct_event(payload, signature_header, secret, tolerance=WEBHOOK_TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError as exc:
        raise InvalidSignatureError("Stripe signature verification failed") from exc
    except (ValueError, TypeError, AttributeError) as exc:  # not UTF-8, not JSON, not a JSON object, a thin event
        raise InvalidSignatureError("webhook payload is not a Stripe event") from exc
    values: dict[str, Any] = event.to_dict()  # construct_event is untyped
    if not isinstance(values.get("id"), str) or not isinstance(values.get("type"), str):
        raise InvalidSignatureError("webhook payload is not a Stripe event")
    return values


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """A valid ``Stripe-Signature`` header for ``payload``: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>.<payload>">``.

    For the tests and the local payment provider, which sign their events the way Stripe does.
    """
    ts = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
