"""The processor sync's world for integration tests: in-memory customers and coupons, a fixed clock and the real
Stripe adapter against the fake Billing API (shared by the sync, seed-scenario and review tests)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from devtools.stripe_sim.billing import FakeStripeBilling
from devtools.stripe_sim.simulator import StripeSimulator

from tests.fakes.clock import FixedClock
from tests.fakes.subscriptions import InMemoryCouponRepository, InMemoryCustomerRepository
from tests.helpers.subscription_builders import usd
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.adapters.stripe.webhooks import parse_event
from usercredits.domain.stripe_events import BillingEvent
from usercredits.kernel.models import Money
from usercredits.subscriptions import billing_events
from usercredits.subscriptions.customers import NewPaymentMethod, add_address, add_payment_method, new_customer
from usercredits.subscriptions.instruments import PaymentMethodKind
from usercredits.subscriptions.models import AddressFields, Coupon, CouponKind, Customer, Plan
from usercredits.subscriptions.ports import SyncPorts
from usercredits.subscriptions.subscribing import add_subscription, apply_coupon

__all__ = [
    "BASIC",
    "PRO",
    "SECRET_KEY",
    "STRIPE_BACKENDS",
    "USER",
    "SyncWorld",
    "a_customer",
    "open_sync_world",
    "usd",
]

SECRET_KEY = "sk_test_51FakeBillingKey0123456789"
USER = "pesho"
PRO = Plan(plan_id="pro", name="Pro", price=Money(amount=1490, currency="usd"), level=2, processor_plan_id="price_pro")
BASIC = Plan(
    plan_id="basic", name="Basic", price=Money(amount=990, currency="usd"), level=1, processor_plan_id="price_basic"
)


@dataclass
class SyncWorld:
    """Pesho's customer in memory, the fake Stripe Billing API and the sync use cases' ports over both."""

    fake: FakeStripeBilling
    customers: InMemoryCustomerRepository
    coupons: InMemoryCouponRepository
    clock: FixedClock
    ports: SyncPorts

    def customer(self) -> Customer:
        found = self.customers.load(USER)
        assert found is not None
        return found

    def put(self, customer: Customer) -> None:
        self.customers.customers[customer.user_id] = customer.model_copy(
            update={"version": self.customer().version if USER in self.customers else 0}
        )


#: The Stripe APIs the seed's processor scenarios run against: the tests' fake, and the Stripe simulation that is the
#: local provider's subscription processor under ``make run`` (on the world's clock, test tokens attached as copies).
STRIPE_BACKENDS = ("stripe_fake", "local_simulation")


@contextmanager
def open_sync_world(backend: str = "stripe_fake") -> Iterator[SyncWorld]:
    """A fresh world: the fake Billing API (or the local simulation: ``STRIPE_BACKENDS``) serving, with the Pro and
    Basic prices, until the block ends."""
    clock = FixedClock(datetime.now(UTC).replace(microsecond=0))
    server = (
        StripeSimulator(lambda: clock.now().timestamp())
        if backend == "local_simulation"
        else FakeStripeBilling(api_key=SECRET_KEY)
    )
    with server as fake:
        fake.add_price("price_pro", 1490)
        fake.add_price("price_basic", 990)
        customers = InMemoryCustomerRepository()
        coupons = InMemoryCouponRepository(
            [
                Coupon(
                    code="TEN",
                    name="Ten percent",
                    kind=CouponKind.PERCENT,
                    percent=Decimal(10),
                    number_of_billing_cycles=2,
                    max_uses=2,
                )
            ]
        )
        processor = StripeSubscriptionProcessor(SECRET_KEY, api_base=fake.url, max_network_retries=0)
        yield SyncWorld(fake, customers, coupons, clock, SyncPorts(customers, coupons, processor, clock))


def a_customer(
    world: SyncWorld, *, card: str = "pm_card_visa", plan: Plan | None = PRO, coupon: bool = False
) -> Customer:
    """Pesho with a card (and a billing address) and, by default, a Pro subscription; nothing sent yet."""
    now = world.clock.now()
    customer = new_customer(USER, now, email="seer@example.com", name="Pesho Peshev")
    customer = customer.model_copy(update={"ip_address": "10.0.0.2"})
    customer, address = add_address(customer, AddressFields(name="Pesho Peshev", country="BG", postal_code="1000"), now)
    customer, method = add_payment_method(
        customer,
        NewPaymentMethod(token=card, kind=PaymentMethodKind.CARD),
        now,
        billing_address_id=address.address_id,
    )
    if plan is not None:
        customer, sub = add_subscription(customer, plan, now, payment_method_id=method.payment_method_id)
        if coupon:
            customer, _ = apply_coupon(customer, sub.subscription_id, world.coupons.get("TEN"), now)
    world.customers.customers[USER] = customer
    return customer


def apply_billing_event(event_id: str, kind: str, payload: dict[str, Any], created: int, ports: SyncPorts) -> str:
    """What the webhook does with a verified billing event: the adapter parses it, the billing use case applies it
    (an event it does not handle is ignored)."""
    parsed = parse_event({"id": event_id, "type": kind, "created": created, "data": {"object": payload}})
    if parsed is None:
        return "ignored"
    assert isinstance(parsed, BillingEvent)
    return billing_events.apply_billing_event(parsed.report, ports)
