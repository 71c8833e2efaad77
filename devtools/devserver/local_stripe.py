"""The subscription processor of ``PAYMENT_PROVIDER=local`` (docs/api.md#local-simulation-dev-server-only): the Stripe
simulation (``devtools.stripe_sim.simulator``) on a port of its own, the events it makes delivered to the webhook
function, and its ``/_local/stripe/...`` controls.

Order of a request that changes Stripe (``POST /customer/sync``, a control, a clock move): the function (or control)
runs to its end, calling the simulation over HTTP; the events the simulation made meanwhile wait in its queue; then,
before the dev server answers, they are delivered one by one, oldest first, each signed as Stripe signs it (the
webhook may call the simulation again: what that makes is delivered next). So a client that got its answer sees every
webhook effect of its request, and no function waits on another (no deadlock). Deliveries are serialised.
"""

from __future__ import annotations

import collections
import json
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devtools.devserver.events import IncomingRequest
from devtools.devserver.local_provider import deliver_event, delivery_report, refund_amount
from devtools.devserver.log import log
from devtools.devserver.replies import Reply, error_reply, json_reply
from devtools.stripe_sim.billing_cycle import SimulationError
from devtools.stripe_sim.simulator import StripeSimulator
from devtools.stripe_sim.wire import parse_form

DEMO_PLANS = Path(__file__).resolve().parents[1] / "demo" / "plans.yaml"
STRIPE_CONTROL_PATH = re.compile(
    r"^/_local/stripe/(?P<kind>subscriptions|charges|disputes)/(?P<id>[^/]+)/"
    r"(?P<action>renew|fail-next-invoice|refund|dispute|win|lose)$"
)
#: ``GET /_local/stripe/v1/...`` reads the simulation's objects as Stripe's API answers them.
STRIPE_API_PREFIX = "/_local/stripe"
STRIPE_DELIVERIES_PATH = "/_local/stripe/deliveries"
_KIND_OF_ACTION = {
    "renew": "subscriptions",
    "fail-next-invoice": "subscriptions",
    "refund": "charges",
    "dispute": "charges",
    "win": "disputes",
    "lose": "disputes",
}
#: Rounds of delivery per request (a webhook that keeps changing Stripe would otherwise never end).
MAX_DELIVERY_ROUNDS = 10
Invoke = Callable[[str, dict[str, Any]], Reply]


class LocalStripe:
    """The simulation and its deliveries; ``start`` before the functions' environment is set (it names the URL)."""

    def __init__(self, clock_file: str | None) -> None:
        self.simulator = StripeSimulator(clock=lambda: _clock_seconds(clock_file), price_source=plan_price)
        #: The last deliveries (``GET /_local/stripe/deliveries``), newest last.
        self.deliveries: collections.deque[dict[str, Any]] = collections.deque(maxlen=200)
        self._delivery_lock = threading.Lock()

    def start(self) -> str:
        """Serve the simulated API on a free port of 127.0.0.1; its base URL (``LOCAL_STRIPE_API_BASE``)."""
        self.simulator.start()
        return self.simulator.url

    def stop(self) -> None:
        self.simulator.stop()

    def deliver_pending(self, request: IncomingRequest, invoke: Invoke) -> list[dict[str, Any]]:
        """Deliver every queued event to the webhook function, oldest first; what each delivery answered."""
        reports: list[dict[str, Any]] = []
        with self._delivery_lock:
            for _ in range(MAX_DELIVERY_ROUNDS):
                events = self.simulator.take_events()
                if not events:
                    break
                for event in events:
                    reply = deliver_event(event, request, invoke)
                    log(f"local stripe: {event['type']} {event['id']} -> webhook {reply.status}")
                    reports.append(delivery_report(event, reply))
            self.deliveries.extend(reports)
        return reports

    def renew_due(self, request: IncomingRequest, invoke: Invoke) -> list[str]:
        """After the clock moved: renew every subscription whose period has ended, and deliver the events."""
        with self.simulator.lock:
            renewed = self.simulator.renew_due()
        if renewed:
            log(f"local stripe: clock moved, renewed {', '.join(renewed)}")
        self.deliver_pending(request, invoke)
        return renewed

    def reply(self, request: IncomingRequest, invoke: Invoke) -> Reply | None:
        """The answer to a ``/_local/stripe/...`` request (None for another path)."""
        path = request.raw_path
        if not path.startswith(STRIPE_API_PREFIX + "/"):
            return None
        if request.method == "GET":
            return self._read(path, request.raw_query)
        found = STRIPE_CONTROL_PATH.match(path)
        if request.method != "POST" or found is None or _KIND_OF_ACTION[found["action"]] != found["kind"]:
            return error_reply(404, "not_found", f"no route for {request.method} {path}")
        try:
            changed = self._control(found["action"], found["id"], request.body)
        except ValueError as exc:
            return error_reply(422, "validation_error", f"invalid body: {exc}")
        except SimulationError as exc:
            status, code = (404, "not_found") if str(exc).startswith("No such") else (409, "conflict")
            return error_reply(status, code, str(exc))
        deliveries = self.deliver_pending(request, invoke)
        return json_reply(200, {"object": changed, "deliveries": deliveries})

    def _read(self, path: str, query: str) -> Reply:
        """``GET /_local/stripe/deliveries``, or a Stripe object or list as ``GET /v1/...`` answers it."""
        if path == STRIPE_DELIVERIES_PATH:
            return json_reply(200, {"deliveries": list(self.deliveries)})
        if not path.startswith(STRIPE_API_PREFIX + "/v1/"):
            return error_reply(404, "not_found", f"no route for GET {path}")
        answer = self.simulator.handle("GET", path.removeprefix(STRIPE_API_PREFIX), parse_form(query), {})
        return json_reply(answer.status, answer.body)

    def _control(self, action: str, object_id: str, body: bytes) -> dict[str, Any]:
        """Carry out the control; the object it changed, as it is now (a copy: other requests may change it)."""
        with self.simulator.lock:
            changed = self._change(action, object_id, body)
            copied: dict[str, Any] = json.loads(json.dumps(changed))
            return copied

    def _change(self, action: str, object_id: str, body: bytes) -> dict[str, Any]:
        simulator = self.simulator
        if action == "renew":  # now: the clock shows a period in progress, as for a renewal that just happened
            return simulator.renew(object_id, start=simulator.now())
        if action == "fail-next-invoice":
            return simulator.fail_next_invoice(object_id)
        if action == "refund":
            return simulator.refund_charge(object_id, refund_amount(body))
        if action == "dispute":
            return simulator.open_dispute(object_id, _reason(body))
        return simulator.close_dispute(object_id, won=action == "win")


def _reason(body: bytes) -> str:
    payload = json.loads(body) if body.strip() else {}
    reason = payload.get("reason", "fraudulent") if isinstance(payload, dict) else None
    if not isinstance(reason, str) or not reason:
        raise ValueError('expected {"reason": "<Stripe dispute reason>"} or no body')
    return reason


def _clock_seconds(clock_file: str | None) -> float:
    if not clock_file:
        return time.time()
    from usercredits.adapters.clock import read_clock

    return read_clock(clock_file).timestamp()


def plan_price(price_id: str) -> tuple[int, str, int] | None:
    """The price a plan names as its ``processorPlanId``: (amount, currency, months), from the plans table."""
    from usercredits.adapters.dynamodb.plans import DynamoPlanRepository

    for plan in DynamoPlanRepository().list_plans():
        if plan.processor_plan_id == price_id:
            return plan.price.amount, str(plan.price.currency), plan.billing_frequency_months
    return None


def put_demo_plans(path: Path = DEMO_PLANS) -> int:
    """Put the demo plans (``devtools/demo/plans.yaml``) as an admin would; how many."""
    import yaml

    from usercredits.adapters.dynamodb.plans import DynamoPlanRepository
    from usercredits.subscriptions.models import Plan

    plans = [Plan.model_validate(entry) for entry in yaml.safe_load(path.read_text(encoding="utf-8"))["plans"]]
    repository, now = DynamoPlanRepository(), datetime.now(UTC)
    for plan in plans:
        repository.put(plan, now)
    return len(plans)
