"""A small simulation of the Stripe API on 127.0.0.1, for the real ``stripe`` SDK (no stripe-mock exists offline).

It understands what ``usercredits.adapters.stripe.payments`` calls:

- ``POST /v1/payment_intents`` (form-encoded, ``a[b]=c``): a realistic PaymentIntent ``pi_...`` with its
  ``client_secret``; a repeated ``Idempotency-Key`` replays the first answer (``Idempotent-Replayed: true``), or
  answers 400 ``idempotency_error`` when the parameters differ, as Stripe does;
- ``GET /v1/payment_intents/{id}``;
- ``POST /v1/payment_intents/{id}/cancel`` (400 ``payment_intent_unexpected_state`` for a succeeded or canceled intent);
- ``POST /v1/refunds`` (``payment_intent``, optional ``amount``: the rest of the charge by default; 400
  ``charge_already_refunded`` when nothing is left, ``amount_too_large`` above what is left).

Every request is recorded (method, path, parsed form, lower-cased headers). Tests change an intent with
``set_intent(id, status=..., amount_received=..., last_payment_error=..., next_action=...)`` and make the next calls
fail with ``fail_next(...)``, ``fail_next_with_card_error(...)``, ``fail_path(...)`` (the next request to a path) or
``delay_next(...)``. ``refund(id, amount)`` plays a refund made in Stripe's dashboard.

Usage::

    with FakeStripe() as fake:
        gateway = StripeGateway("sk_test_x", api_base=fake.url, max_network_retries=0)
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Self

from devtools.stripe_sim.wire import (
    Answer,
    ApiRequestHandler,
    ApiServer,
    Failure,
    RecordedRequest,
    stripe_error,
)

INTENT_PATH = re.compile(r"^/v1/payment_intents/(?P<id>[A-Za-z0-9_]+)$")
CANCEL_PATH = re.compile(r"^/v1/payment_intents/(?P<id>[A-Za-z0-9_]+)/cancel$")
REFUNDS_PATH = "/v1/refunds"
CANCELABLE = frozenset(
    {"requires_payment_method", "requires_capture", "requires_confirmation", "requires_action", "processing"}
)
# Stripe lets a "processing" intent be canceled only in rare cases; the fake refuses it, like most real ones.
CANCELABLE_HERE = CANCELABLE - {"processing"}


class FakeStripe:
    """The fake API server; a context manager starting it on a free port of 127.0.0.1 in a thread."""

    def __init__(self, *, api_key: str | None = None) -> None:
        #: When set, requests must carry ``Authorization: Bearer <api_key>`` (401 otherwise).
        self.api_key = api_key
        self.requests: list[RecordedRequest] = []
        self.intents: dict[str, dict[str, Any]] = {}
        #: Refunds made (through the API or ``refund``), in order; each intent's refunded total is ``refunded(id)``.
        self.refunds: list[dict[str, Any]] = []
        self._path_failures: list[tuple[re.Pattern[str], Failure]] = []
        self._idempotent: dict[str, tuple[str, dict[str, Any], int, dict[str, Any]]] = {}
        self._failures: deque[Failure] = deque()
        self._delays: deque[float] = deque()
        self._lock = threading.Lock()
        #: Where times (``created``, periods) come from: the real clock, or the dev server's test clock.
        self.clock: Callable[[], float] = time.time
        self._server: ApiServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = ApiServer(("127.0.0.1", 0), ApiRequestHandler)
        self._server.api = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-stripe", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "FakeStripe is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        """Forget every intent, refund, request and armed failure (a fresh account for the next test)."""
        with self._lock:
            self.requests.clear()
            self.intents.clear()
            self.refunds.clear()
            self._idempotent.clear()
            self._failures.clear()
            self._path_failures.clear()
            self._delays.clear()

    def now(self) -> int:
        """Epoch seconds on the simulation's clock (``clock``)."""
        return int(self.clock())

    # ---- test controls ---------------------------------------------------------------------------------------------

    def set_intent(self, intent_id: str, **fields: Any) -> dict[str, Any]:
        """Change an intent as Stripe would after the customer acted (``status``, ``amount_received``, ...)."""
        with self._lock:
            intent = self.intents[intent_id]
            intent.update(fields)
            return dict(intent)

    def forget_idempotency_keys(self) -> None:
        """Forget every ``Idempotency-Key`` answered so far, as Stripe does after 24 hours."""
        with self._lock:
            self._idempotent.clear()

    def remember_answer(self, key: str, path: str, form: dict[str, Any], status: int, body: dict[str, Any]) -> None:
        """Keep ``status``/``body`` as the answer to ``key``, as Stripe keeps a request's result (errors included)
        under its ``Idempotency-Key``: a POST with that key and the same parameters is answered the same again."""
        with self._lock:
            self._idempotent[key] = (path, form, status, body)

    def fail_next(
        self,
        status: int,
        *,
        error_type: str | None = None,
        code: str | None = None,
        message: str = "An error occurred with our connection to Stripe.",
        headers: dict[str, str] | None = None,
        times: int = 1,
        **extra: Any,
    ) -> None:
        """The next ``times`` requests answer ``status`` with a Stripe error body (type guessed from the status)."""
        kind = error_type or {402: "card_error", 429: "invalid_request_error"}.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        error = {"type": kind, "message": message, **({"code": code} if code else {}), **extra}
        with self._lock:
            self._failures.extend(Failure(status, error, dict(headers or {})) for _ in range(times))

    def fail_next_with_card_error(
        self,
        code: str = "card_declined",
        decline_code: str = "generic_decline",
        message: str = "Your card was declined.",
    ) -> None:
        """The next request answers 402 ``card_error``, with the card details a real one carries."""
        self.fail_next(
            402,
            code=code,
            message=message,
            decline_code=decline_code,
            doc_url=f"https://stripe.com/docs/error-codes/{code}",
            payment_method={
                "id": "pm_fake_card",
                "object": "payment_method",
                "type": "card",
                "card": {"brand": "visa", "last4": "0002", "exp_month": 12, "exp_year": 2031, "country": "US"},
            },
        )

    def fail_path(self, pattern: str, status: int = 503, *, code: str | None = None) -> None:
        """The next request whose path matches ``pattern`` (a regular expression) answers ``status``."""
        kind = "api_error" if status >= 500 else "invalid_request_error"
        error = {
            "type": kind,
            "message": "An error occurred with our connection to Stripe.",
            **({"code": code} if code else {}),
        }
        with self._lock:
            self._path_failures.append((re.compile(pattern), Failure(status, error)))

    def refund(self, intent_id: str, amount: int | None = None, **metadata: str) -> dict[str, Any]:
        """Refund ``amount`` (default: what is left) of a succeeded intent, as the dashboard would."""
        answer = self._refund(
            {"payment_intent": intent_id, **({"amount": str(amount)} if amount else {}), "metadata": metadata}
        )
        if answer.status != 200:
            raise ValueError(answer.body["error"]["message"])
        return answer.body

    def refunded(self, intent_id: str) -> int:
        with self._lock:
            return sum(int(r["amount"]) for r in self.refunds if r["payment_intent"] == intent_id)

    def delay_next(self, seconds: float) -> None:
        """The next request is answered only after ``seconds`` (to trigger the client's timeout)."""
        with self._lock:
            self._delays.append(seconds)

    def posts(self, path: str = "/v1/payment_intents") -> list[RecordedRequest]:
        return [request for request in self.requests if request.method == "POST" and request.path == path]

    # ---- API -------------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, form: dict[str, Any], headers: dict[str, str]) -> Answer:
        with self._lock:
            self.requests.append(RecordedRequest(method, path, form, headers))
            delay = self._delays.popleft() if self._delays else 0.0
            failure = self._failures.popleft() if self._failures else self._path_failure(path)
        if delay:
            time.sleep(delay)
        if failure is not None:
            return Answer(failure.status, {"error": failure.error}, failure.headers)
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return stripe_error(401, "invalid_request_error", "Invalid API Key provided: sk_****", None)
        key = headers.get("idempotency-key") if method == "POST" else None
        if key is None:
            return self._route(method, path, form)
        with self._lock:
            seen = self._idempotent.get(key)
        if seen is not None:
            if (seen[0], seen[1]) != (path, form):
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    None,
                )
            return Answer(seen[2], seen[3], {"Idempotent-Replayed": "true"})
        answer = self._route(method, path, form)
        if answer.status < 500:
            with self._lock:
                self._idempotent.setdefault(key, (path, form, answer.status, answer.body))
        return answer

    def _path_failure(self, path: str) -> Failure | None:
        for index, (pattern, armed) in enumerate(self._path_failures):
            if pattern.search(path):
                del self._path_failures[index]
                return armed
        return None

    def _route(self, method: str, path: str, form: dict[str, Any]) -> Answer:
        if method == "POST" and path == "/v1/payment_intents":
            return self._create(form)
        if method == "GET" and (match := INTENT_PATH.match(path)):
            return self._read(match["id"])
        if method == "POST" and (match := CANCEL_PATH.match(path)):
            return self._cancel(match["id"], form)
        if method == "POST" and path == REFUNDS_PATH:
            return self._refund(form)
        return stripe_error(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).", None)

    def _create(self, form: dict[str, Any]) -> Answer:
        amount, currency = form.get("amount", ""), form.get("currency", "")
        if not amount.isdigit() or int(amount) < 1:
            return stripe_error(
                400, "invalid_request_error", "Invalid positive integer", "parameter_invalid_integer", "amount"
            )
        if not re.fullmatch(r"[a-z]{3}", currency):
            return stripe_error(
                400, "invalid_request_error", "Invalid currency", "parameter_invalid_string", "currency"
            )
        intent_id = f"pi_{secrets.token_hex(12)}"
        automatic = form.get("automatic_payment_methods") or {}
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(amount),
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": (
                {"enabled": True, "allow_redirects": "always"} if automatic.get("enabled") == "true" else None
            ),
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "confirmation_method": "automatic",
            "created": self.now(),
            "currency": currency,
            "customer": form.get("customer"),
            "description": form.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": dict(form.get("metadata") or {}),
            "next_action": None,
            "payment_method": None,
            "payment_method_types": ["card"],
            "status": "requires_payment_method",
        }
        with self._lock:
            self.intents[intent_id] = intent
            return Answer(200, dict(intent))

    def _read(self, intent_id: str) -> Answer:
        with self._lock:
            intent = self.intents.get(intent_id)
            if intent is None:
                return _missing(intent_id)
            return Answer(200, dict(intent))

    def _cancel(self, intent_id: str, form: dict[str, Any]) -> Answer:
        with self._lock:
            intent = self.intents.get(intent_id)
            if intent is None:
                return _missing(intent_id)
            if intent["status"] not in CANCELABLE_HERE:
                allowed = ", ".join(sorted(CANCELABLE))
                message = (
                    f"You cannot cancel this PaymentIntent because it has a status of {intent['status']}. Only a "
                    f"PaymentIntent with one of the following statuses may be canceled: {allowed}."
                )
                answer = stripe_error(400, "invalid_request_error", message, "payment_intent_unexpected_state")
                answer.body["error"]["payment_intent"] = dict(intent)
                return answer
            intent.update(
                status="canceled",
                canceled_at=self.now(),
                cancellation_reason=form.get("cancellation_reason"),
            )
            return Answer(200, dict(intent))

    def _refund(self, form: dict[str, Any]) -> Answer:
        intent_id = str(form.get("payment_intent") or "")
        with self._lock:
            intent = self.intents.get(intent_id)
            if intent is None:
                return _missing(intent_id)
            if intent["status"] != "succeeded":
                return stripe_error(
                    400,
                    "invalid_request_error",
                    f"This PaymentIntent ({intent_id}) does not have a successful charge to refund.",
                    "charge_not_refundable",
                )
            left = int(intent["amount_received"]) - sum(
                int(r["amount"]) for r in self.refunds if r["payment_intent"] == intent_id
            )
            amount = int(form["amount"]) if str(form.get("amount") or "").isdigit() else left
            if left <= 0:
                return stripe_error(
                    400, "invalid_request_error", "Charge has already been refunded.", "charge_already_refunded"
                )
            if amount < 1 or amount > left:
                return stripe_error(
                    400, "invalid_request_error", "Refund amount is greater than unrefunded amount.", "amount_too_large"
                )
            refund = {
                "id": f"re_{secrets.token_hex(12)}",
                "object": "refund",
                "amount": amount,
                "currency": intent["currency"],
                "payment_intent": intent_id,
                "reason": form.get("reason"),
                "metadata": dict(form.get("metadata") or {}),
                "status": "succeeded",
                "created": self.now(),
            }
            self.refunds.append(refund)
            return Answer(200, dict(refund))


def _missing(intent_id: str) -> Answer:
    return stripe_error(
        404, "invalid_request_error", f"No such payment_intent: '{intent_id}'", "resource_missing", "intent"
    )
