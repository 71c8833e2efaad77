"""The ordering routes, the grant a paid order makes, and the Stripe webhook's events (``dynamodb_requests`` rows)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from devtools.bench.consumption_routes import ConsumptionBench
from devtools.bench.environment import EVENTS_DIR
from devtools.bench.handlers import HandlerBench, Scenario, call_handler
from devtools.bench.rows import BenchError, Row
from devtools.bench.webhook_events import (
    balances_after_return,
    dispute_object,
    intent_object,
    refunded_charge,
    stripe_event_payload,
    webhook_request,
)
from devtools.lambda_context import LambdaContext


class OrderingBench(HandlerBench):
    """The ordering routes, and the grant a paid order makes."""

    MODULE = "ordering.handler"
    FUNCTION = "OrderingFunction"
    BASE_EVENT = "ordering/list_offers.json"
    #: The user whose EnterpriseM order is paid (3 groups with lots): the consumption bench reads their credits.
    GRANT_USER = "bench-grant"

    def run(self) -> None:
        self._offers()
        order_id = self._priced_orders()
        self._free_and_locked()
        self._reads(order_id)
        self._grant()
        self._webhook()
        self._money_back()
        self._abandoned_intent()

    def _offers(self) -> None:
        browser = "bench-browser"
        self.reset_catalog_cache()
        self.measure("GET /offers", "cold catalog", budget=2, user=browser)
        self.measure("GET /offers", "warm", budget=1, user=browser)
        self.measure("GET /offers/{offerId}", "warm", user=browser, path_parameters={"offerId": "StartupM"})

    def _priced_orders(self) -> str:
        buyer, body = "bench-buyer", {"offerId": "_100tokens", "quantity": 2}
        key = {"Idempotency-Key": "bench-priced-order-1"}
        first = self.measure(
            "POST /orders", "priced, warm catalog", budget=3, status=201, user=buyer, body=body, headers=key
        )
        order_id = str((first.body or {}).get("order", {}).get("orderId", ""))

        def same_order(replayed: Any) -> str | None:
            replayed_id = (replayed or {}).get("order", {}).get("orderId")
            return None if replayed_id == order_id else f"replay returned order {replayed_id}, not {order_id}"

        self.measure(
            "POST /orders", "idempotent replay", status=201, user=buyer, body=body, headers=key, check=same_order
        )
        self.reset_catalog_cache()
        body, key = {"offerId": "_20tokens", "quantity": 1}, {"Idempotency-Key": "bench-priced-order-2"}
        self.measure("POST /orders", "priced, cold catalog", budget=3, status=201, user=buyer, body=body, headers=key)
        return order_id

    def _free_and_locked(self) -> None:
        free = {"offerId": "Free", "quantity": 1}
        self.measure("POST /orders", "free bundle, new user", budget=3, status=201, user="bench-free", body=free)
        # The locked offer 1-article-month is unlocked by a paid ScaleUp window: pay a ScaleUpM order first.
        placed = self.setup_call("POST /orders", status=201, user="bench-scaleup", body={"offerId": "ScaleUpM"})
        if (paid := self.pay("bench-scaleup", placed.body["order"]["orderId"])) != "paid":
            raise BenchError(f"setup: the ScaleUpM order is {paid}, not paid")
        locked = {"offerId": "1-article-month", "quantity": 1}
        label = "locked offer, unlocked by a paid group"
        self.measure("POST /orders", label, budget=3, status=201, user="bench-scaleup", body=locked)

    def _reads(self, order_id: str) -> None:
        buyer, order = "bench-buyer", {"orderId": order_id}
        self.measure("GET /orders", user=buyer)
        self.measure("GET /orders/{orderId}", user=buyer, path_parameters=order)
        self.measure("POST /orders/{orderId}/payment", user=buyer, path_parameters=order)

        def subscribed(body: Any) -> str | None:
            return None if (body or {}).get("subscribed") is True else f"expected subscribed=true, got {body}"

        scaleup = {"offerId": "ScaleUpM"}
        self.measure("GET /subscriptions/{offerId}", user="bench-scaleup", path_parameters=scaleup, check=subscribed)

    def _grant(self) -> None:
        user = self.GRANT_USER
        placed = self.setup_call("POST /orders", status=201, user=user, body={"offerId": "EnterpriseM"})
        name = "grant on paid order (apply_order_paid, EnterpriseM)"
        with self.counter.measure() as measurement:
            paid = self.pay(user, placed.body["order"]["orderId"])
        problem = None if paid == "paid" else f"order is {paid} after apply_order_paid"
        self.scenarios.append(Scenario(name, 3, measurement, problem))
        transactions = measurement.hooked.count("TransactWriteItems")
        self.extra_rows.append(Row(name, "transactions", transactions, 1, "TransactWriteItems requests"))

    def _webhook(self) -> None:
        """A signed ``payment_intent.succeeded`` through the webhook handler: dedupe record, order and grant."""
        user = "bench-webhook"
        order = self._place(user, "EnterpriseM")
        self.measure_webhook(
            "webhook payment_intent.succeeded (dedupe included)",
            "payment_intent.succeeded",
            intent_object(order["paymentIntentId"], order["total"], self._metadata(user, order)),
            budget=3,
            check=lambda: self._order_check(user, order["orderId"], "paid"),
        )

    # ------------------------------------------------------------------------------------ webhooks: helpers
    #: Stripe event ids sent so far (each event a new id: the webhook records it, and a repeated id is a redelivery).
    _events_sent = 0

    def send_webhook(self, kind: str, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Post a ``kind`` event about ``obj``, signed with the local webhook secret, to the webhook handler."""
        from stripe_webhook import handler as webhook

        self._events_sent += 1
        payload = stripe_event_payload(f"evt_bench_{self._events_sent}", kind, obj)
        secret = os.environ.get("LOCAL_WEBHOOK_SECRET") or "whsec_local"
        request = webhook_request(payload, secret)
        return dict(webhook.lambda_handler(request, LambdaContext("StripeWebhookFunction", 512, 15)))

    def measure_webhook(
        self,
        name: str,
        kind: str,
        obj: Mapping[str, Any],
        *,
        budget: float | None,
        check: Callable[[], str | None],
    ) -> None:
        """One measured webhook event; its row fails unless it is answered 200 and ``check`` (run after the
        measurement: what the event changed) finds nothing wrong."""
        with self.counter.measure() as measurement:
            response = self.send_webhook(kind, obj)
        status = int(response.get("statusCode") or 0)
        problem = f"webhook answered {status}: {str(response.get('body'))[:300]}" if status != 200 else check()
        self.scenarios.append(Scenario(name, budget, measurement, problem))

    def setup_webhook(self, kind: str, obj: Mapping[str, Any]) -> None:
        """A webhook event that prepares a scenario (not measured); anything but 200 stops the bench."""
        response = self.send_webhook(kind, obj)
        if response.get("statusCode") != 200:
            raise BenchError(f"setup {kind} answered {response.get('statusCode')}: {str(response.get('body'))[:500]}")

    def _place(self, user: str, offer_id: str) -> dict[str, Any]:
        """A priced order placed through the handler (not measured): the order as answered, with its intent."""
        order = self.setup_call("POST /orders", status=201, user=user, body={"offerId": offer_id}).body["order"]
        if not order.get("paymentIntentId"):
            raise BenchError(f"setup: the {offer_id} order has no payment intent: {json.dumps(order)[:300]}")
        return dict(order)

    @staticmethod
    def _metadata(user: str, order: Mapping[str, Any]) -> dict[str, str]:
        """What we set on an order's intents (and Stripe copies onto their charges)."""
        return {"orderId": str(order["orderId"]), "userId": user}

    def _paid(self, user: str, offer_id: str) -> dict[str, Any]:
        """An order placed and paid by its intent's signed ``payment_intent.succeeded`` (not measured)."""
        order = self._place(user, offer_id)
        intent = intent_object(order["paymentIntentId"], order["total"], self._metadata(user, order))
        self.setup_webhook("payment_intent.succeeded", intent)
        if problem := self._order_check(user, order["orderId"], "paid"):
            raise BenchError(f"setup: {problem}")
        return order

    @staticmethod
    def _stored_order(user: str, order_id: str) -> Any:
        from usercredits.adapters.dynamodb.orders import DynamoOrderRepository

        return DynamoOrderRepository().get_order(user, order_id)

    def _order_check(self, user: str, order_id: str, status: str) -> str | None:
        order = self._stored_order(user, order_id)
        found = order.status.value if order is not None else None
        return None if found == status else f"order {order_id} is {found}, expected {status}"

    def credit_balances(self, user: str) -> dict[str, int]:
        """``GET /credits`` through the consumption handler (not measured): each group's balance."""
        from consumption import handler as consumption

        base = json.loads((EVENTS_DIR / ConsumptionBench.BASE_EVENT).read_text(encoding="utf-8"))
        result = call_handler(consumption, ConsumptionBench.FUNCTION, base, "GET /credits", user=user)
        if result.status != 200:
            raise BenchError(f"GET /credits of {user} answered {result.status}: {json.dumps(result.body)[:300]}")
        return {group["offerGroup"]: int(group["balance"]) for group in (result.body or {}).get("groups", [])}

    def _balances_check(self, user: str, expected: Mapping[str, int]) -> str | None:
        found = self.credit_balances(user)
        return None if found == dict(expected) else f"GET /credits balances {found}, expected {dict(expected)}"

    # ------------------------------------------------------------------------- webhooks: money going back
    #: The partial refund measured: 1000 of EnterpriseM's 9900 (README "Money going back": 31 of its 300 AiTokens).
    REFUNDED = 1000

    def _money_back(self) -> None:
        """A partial refund (``charge.refunded``, metadata on the charge) and a dispute opened then won
        (``charge.dispute.*``, no metadata: one Query of the ByPaymentIntent index more) on paid EnterpriseM orders
        of users holding nothing else; the balances are checked through ``GET /credits`` after each."""
        from stripe_webhook import handler as webhook

        webhook.dependencies().ports.catalog.list_offers()  # the webhook's catalog cache warm (group policies)
        user = "bench-refund"
        order = self._paid(user, "EnterpriseM")
        granted, total = self.credit_balances(user), order["total"]
        charge = refunded_charge(order["paymentIntentId"], total, self.REFUNDED, self._metadata(user, order))
        expected = balances_after_return(granted, self.REFUNDED, int(total["amount"]))

        def revoked() -> str | None:
            stored = self._stored_order(user, order["orderId"])
            if stored is None or stored.status.value != "paid" or stored.revoked_for_amount != self.REFUNDED:
                found = stored and (stored.status.value, stored.revoked_for_amount)
                return f"order (status, revoked for) {found}, expected ('paid', {self.REFUNDED})"
            return self._balances_check(user, expected)

        name = f"webhook charge.refunded (partial, {self.REFUNDED} of {total['amount']}, warm catalog)"
        self.measure_webhook(name, "charge.refunded", charge, budget=3, check=revoked)

        user = "bench-dispute"
        order = self._paid(user, "EnterpriseM")
        granted, total = self.credit_balances(user), order["total"]
        amount, currency = int(total["amount"]), str(total["currency"])
        opened = dispute_object(order["paymentIntentId"], amount, currency, "needs_response")
        name = "webhook charge.dispute.created (full amount, found by intent id)"
        taken = balances_after_return(granted, amount, amount)
        self.measure_webhook(
            name, "charge.dispute.created", opened, budget=4, check=lambda: self._balances_check(user, taken)
        )
        won = dispute_object(order["paymentIntentId"], amount, currency, "won")
        name = "webhook charge.dispute.closed (won: restores)"
        self.measure_webhook(
            name, "charge.dispute.closed", won, budget=4, check=lambda: self._balances_check(user, granted)
        )

    # ------------------------------------------------------------------------------ webhooks: abandoned intent
    def _abandoned_intent(self) -> None:
        """Events about an intent the order abandoned (``POST /orders/{id}/payment`` made a new one): its cancel
        changes nothing (the order is read, nothing written); its success after the new intent paid the order is a
        duplicate payment, refunded (the local gateway: no network call) and recorded on the order."""
        user = "bench-abandoned"
        order = self._place(user, "_100tokens")
        order_id, abandoned = order["orderId"], order["paymentIntentId"]
        again = self.setup_call(
            "POST /orders/{orderId}/payment", status=200, user=user, path_parameters={"orderId": order_id}
        )
        current = str(((again.body or {}).get("payment") or {}).get("paymentIntentId") or "")
        if not current or current == abandoned:
            raise BenchError(f"setup: POST /orders/{order_id}/payment gave intent {current!r} (first: {abandoned})")
        metadata = self._metadata(user, order)
        before = self._stored_order(user, order_id)

        def unchanged() -> str | None:
            after = self._stored_order(user, order_id)
            if after is None or after.status.value != "pending" or after.updated_at != before.updated_at:
                return f"the order changed: {after and after.status.value}, updated {after and after.updated_at}"
            return None

        canceled = intent_object(abandoned, order["total"], metadata, status="canceled")
        name = "webhook payment_intent.canceled (abandoned intent: changes nothing)"
        self.measure_webhook(name, "payment_intent.canceled", canceled, budget=1, check=unchanged)

        self.setup_webhook("payment_intent.succeeded", intent_object(current, order["total"], metadata))
        if problem := self._order_check(user, order_id, "paid"):
            raise BenchError(f"setup: {problem}")

        def refunded() -> str | None:
            after = self._stored_order(user, order_id)
            figures = after.other_intents.get(abandoned) if after is not None else None
            mentioned = after is not None and any(
                abandoned in entry.message and "refunded" in entry.message for entry in after.history
            )
            if after is None or after.status.value != "paid" or after.payment_intent_id != current:
                return f"the order is {after and after.status.value} with intent {after and after.payment_intent_id}"
            if figures is None or not figures.duplicate_refund_id or not mentioned:
                return f"no refund of {abandoned} recorded: {figures}, history {[e.message for e in after.history]}"
            return None

        succeeded = intent_object(abandoned, order["total"], metadata)
        name = "webhook payment_intent.succeeded (abandoned intent, order paid by the new one: refunded)"
        self.measure_webhook(name, "payment_intent.succeeded", succeeded, budget=2, check=refunded)
