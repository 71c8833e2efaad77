"""One charge event (a refund or a dispute) reaches one half: the credits half first, the subscriptions half only when
no credits order paid with the charge (docs/rules.md#subscription-refunds-and-disputes)."""

from __future__ import annotations

from typing import Any

import pytest

from usercredits.adapters.stripe.webhooks import parse_event
from usercredits.domain import refunds, stripe_events
from usercredits.domain.stripe_events import ChargeEvent, StripeEventPorts
from usercredits.subscriptions import billing_events
from usercredits.subscriptions.models import DisputeState
from usercredits.subscriptions.ports import ChargeBackReport


class Calls:
    def __init__(self, credits_outcome: str) -> None:
        self.credits_outcome = credits_outcome
        self.billing: list[ChargeBackReport] = []
        self.ports_built = 0


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Calls:
    seen = Calls(request.param)
    monkeypatch.setattr(refunds, "apply_charge_report", lambda *_, **__: seen.credits_outcome)

    def charge_back(report: ChargeBackReport, ports: Any) -> str:
        seen.billing.append(report)
        return "applied"

    monkeypatch.setattr(billing_events, "apply_charge_back", charge_back)
    return seen


def deliver(event: ChargeEvent, calls: Calls) -> str:
    def billing() -> Any:
        calls.ports_built += 1
        return object()

    ports = StripeEventPorts(refunds=None, payments=None, billing=billing)  # type: ignore[arg-type]
    return stripe_events.apply_stripe_event(event, ports)


def refunded(**charge: Any) -> ChargeEvent:
    payload = {"id": "ch_1", "object": "charge", "customer": "cus_1", "payment_intent": "pi_1", "currency": "usd"}
    parsed = parse_event(
        {"id": "evt_1", "type": "charge.refunded", "data": {"object": {**payload, "amount_refunded": 100, **charge}}}
    )
    assert isinstance(parsed, ChargeEvent)
    return parsed


@pytest.mark.parametrize("calls", ["applied", "unchanged", "currency-mismatch"], indirect=True)
def test_a_charge_of_a_credits_order_never_reaches_the_subscriptions_half(calls: Calls) -> None:
    assert deliver(refunded(), calls) == calls.credits_outcome
    assert calls.billing == [] and calls.ports_built == 0


@pytest.mark.parametrize("calls", ["unknown-order"], indirect=True)
def test_a_charge_of_no_credits_order_goes_to_the_subscriptions_half(calls: Calls) -> None:
    assert deliver(refunded(), calls) == "applied"
    assert calls.billing == [ChargeBackReport(charge_processor_id="ch_1", customer_processor_id="cus_1")]


@pytest.mark.parametrize("calls", ["unknown-order"], indirect=True)
def test_a_dispute_names_its_charge_and_state(calls: Calls) -> None:
    dispute = {"id": "dp_1", "object": "dispute", "charge": "ch_1", "payment_intent": "pi_1", "amount": 100}
    for kind, status, state in [
        ("charge.dispute.created", "needs_response", DisputeState.OPEN),
        ("charge.dispute.closed", "lost", DisputeState.LOST),
        ("charge.dispute.closed", "won", DisputeState.WON),
    ]:
        parsed = parse_event({"id": "evt", "type": kind, "data": {"object": {**dispute, "status": status}}})
        assert isinstance(parsed, ChargeEvent)
        deliver(parsed, calls)
        assert calls.billing[-1] == ChargeBackReport("ch_1", None, state)
