"""Acceptance scenarios of the original mongoose-subscriptions library (Mxx labels; docs/rules.md#subscriptions-half)
whose sub-cases no other unit test pins down.

Pure domain, with the in-memory fakes of ``tests/fakes``: M09 (the processor wrappers delegate to the processor, here a
recording one), M12 (a changed payment method on reset), M16 and M19 (entitlement edge cases isolated from the
"created in the future" rule), M34 (look the coupon up, then validate) and M35 (a zero-amount coupon).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes.clock import FixedClock
from tests.fakes.subscriptions import InMemoryCouponRepository, InMemoryCustomerRepository
from tests.helpers.subscription_builders import NOW, address, at, base_customer, card, paypal, subscription, usd
from usercredits.kernel.models import Money
from usercredits.subscriptions import service
from usercredits.subscriptions.coupons import EXPIRED, INVALID, LIMIT_REACHED, coupon_discount
from usercredits.subscriptions.customers import NewPaymentMethod, set_default_payment_method, update_profile
from usercredits.subscriptions.entitlement import active_subscriptions, valid_subscriptions
from usercredits.subscriptions.errors import CouponError
from usercredits.subscriptions.instruments import PaymentMethodKind
from usercredits.subscriptions.loading import load_processor
from usercredits.subscriptions.models import (
    Coupon,
    CouponKind,
    Customer,
    DiscountKind,
    Plan,
    ProcessorItem,
    ProcessorState,
    ProfileFields,
    Subscription,
    SubscriptionStatus,
    Transaction,
    TransactionKind,
    TransactionStatus,
)
from usercredits.subscriptions.money_back import refund_transaction, void_transaction
from usercredits.subscriptions.ports import (
    CustomerPorts,
    ProcessorCustomer,
    ProcessorPaymentMethod,
    ProcessorSubscription,
    SyncPorts,
)
from usercredits.subscriptions.saving import save_processor
from usercredits.subscriptions.subscribing import cancel_subscription
from usercredits.subscriptions.sync_rules import reset_processor

SAVED, CHANGED, INITIAL = ProcessorState.SAVED, ProcessorState.CHANGED, ProcessorState.INITIAL
USER = "pesho"  # the base customer's user id


# ---- M09: the processor wrappers ------------------------------------------------------------------------------------


@dataclass
class RecordingProcessor:
    """A processor that records each call (name and the arguments the seed's M09 checks) and answers minimally.

    Only the calls M09 expects are defined: any other call fails the test with an AttributeError.
    """

    calls: list[tuple[Any, ...]] = field(default_factory=list)

    def update_customer(self, processor_id: str, customer: Customer, *, idempotency_key: str) -> ProcessorCustomer:
        self.calls.append(("update_customer", processor_id, customer.name))
        return ProcessorCustomer(id=processor_id, name=customer.name, email=customer.email)

    def cancel_subscription(
        self, processor_id: str, *, at_period_end: bool, idempotency_key: str
    ) -> ProcessorSubscription:
        self.calls.append(("cancel_subscription", processor_id, at_period_end))
        return ProcessorSubscription(
            id=processor_id, status=SubscriptionStatus.CANCELED, price=usd(1320), price_id="price_pro"
        )

    def refund(self, transaction_processor_id: str, amount: Money | None, *, idempotency_key: str) -> Transaction:
        self.calls.append(("refund", transaction_processor_id, amount))
        return Transaction(
            transaction_id="re_1",
            processor=ProcessorItem(id="re_1", state=SAVED),
            kind=TransactionKind.REFUND,
            amount=amount or usd(1341),
            status=TransactionStatus.SETTLED,
            refunded_transaction_id=transaction_processor_id,
            created_at=NOW,
        )

    def void(self, transaction_processor_id: str, *, idempotency_key: str) -> Transaction:
        self.calls.append(("void", transaction_processor_id))
        return Transaction(
            transaction_id=transaction_processor_id,
            processor=ProcessorItem(id=transaction_processor_id, state=SAVED),
            amount=usd(1341),
            status=TransactionStatus.VOIDED,
            created_at=NOW,
        )

    def retrieve_customer(self, processor_id: str) -> ProcessorCustomer | None:
        self.calls.append(("retrieve_customer", processor_id))
        return ProcessorCustomer(id=processor_id, name="Pesho Peshev", email="seer@example.com")

    def list_payment_methods(self, customer_processor_id: str) -> list[ProcessorPaymentMethod]:
        self.calls.append(("list_payment_methods", customer_processor_id))
        return [ProcessorPaymentMethod(id="id-pm-three", kind=PaymentMethodKind.PAYPAL)]

    def list_subscriptions(self, customer_processor_id: str) -> list[ProcessorSubscription]:
        self.calls.append(("list_subscriptions", customer_processor_id))
        return []

    def list_transactions(self, customer_processor_id: str) -> list[Transaction]:
        self.calls.append(("list_transactions", customer_processor_id))
        return []


def sale(processor_id: str, status: TransactionStatus) -> Transaction:
    return Transaction(
        transaction_id=f"t-{processor_id}",
        processor=ProcessorItem(id=processor_id, state=SAVED),
        amount=usd(1341),
        status=status,
        subscription_id="four",
        created_at=at("2017-07-01"),
    )


def processor_world(customer: Customer) -> tuple[RecordingProcessor, InMemoryCustomerRepository, SyncPorts]:
    processor = RecordingProcessor()
    customers = InMemoryCustomerRepository([customer])
    ports = SyncPorts(customers, InMemoryCouponRepository(), processor, FixedClock(NOW))  # type: ignore[arg-type]
    return processor, customers, ports


def test_m09_save_processor_sends_an_edited_profile_once() -> None:
    # (Our rebuild has no markChanged step: edits mark items changed as they happen, so only the processor call is
    # checked here.)
    # Given the synced base customer whose name was edited locally
    edited = update_profile(base_customer(), ProfileFields(name="Pesho Changed"), NOW)
    processor, customers, ports = processor_world(edited)
    # When saveProcessor runs twice
    saved = save_processor(USER, ports)
    save_processor(USER, ports)
    # Then the processor was asked once to update that customer (the seed's processor.save called once), and the
    # second sync, with nothing left to send, made no call
    assert processor.calls == [("update_customer", "id-customer", "Pesho Changed")]
    assert saved.processor.state is SAVED


def test_m09_cancel_is_delegated_to_the_processor_with_the_subscription() -> None:
    # (The seed's cancelProcessor(p, id) is a local cancel followed by saveProcessor here; Stripe ids replace the
    # seed's local ones at the processor.)
    # Given the base customer whose subscription "four" was canceled locally
    canceled, _ = cancel_subscription(base_customer(), "four", NOW)
    processor, customers, ports = processor_world(canceled)
    # When it is synced
    saved = save_processor(USER, ports)
    # Then the processor cancels exactly that subscription, now (not at period end)
    assert processor.calls == [("cancel_subscription", "id-subscription", False)]
    assert (saved.subscriptions[0].status, saved.subscriptions[0].processor.state) == (
        SubscriptionStatus.CANCELED,
        SAVED,
    )


@pytest.mark.parametrize("amount", [usd(123), None], ids=["partial-123", "full"])
def test_m09_refund_is_delegated_with_the_transaction_and_the_amount(amount: Money | None) -> None:
    # Given the base customer with a settled sale
    customer = base_customer(transactions=[sale("ch_1", TransactionStatus.SETTLED)])
    processor, customers, ports = processor_world(customer)
    # When refundProcessor(transaction, amount) runs
    refund = refund_transaction(USER, "t-ch_1", amount, ports)
    # Then the processor refunds that transaction (by its processor id) with that amount (None: in full)
    assert processor.calls == [("refund", "ch_1", amount)]
    stored = customers.load(USER)
    assert stored is not None and stored.transactions[0] == refund
    assert refund.refunded_transaction_id == "t-ch_1"


def test_m09_void_is_delegated_with_the_transaction() -> None:
    # Given the base customer with a sale not settled yet
    customer = base_customer(transactions=[sale("ch_2", TransactionStatus.SUBMITTED_FOR_SETTLEMENT)])
    processor, customers, ports = processor_world(customer)
    # When voidProcessor(transaction) runs
    void_transaction(USER, "t-ch_2", ports)
    # Then the processor voids that transaction, and it is replaced in place
    assert processor.calls == [("void", "ch_2")]
    stored = customers.load(USER)
    assert stored is not None
    assert [(t.transaction_id, t.status) for t in stored.transactions] == [("t-ch_2", TransactionStatus.VOIDED)]


def test_m09_load_reads_the_customer_from_the_processor() -> None:
    # Given the synced base customer
    processor, _, ports = processor_world(base_customer())
    # When loadProcessor runs
    load_processor(USER, ports)
    # Then the processor is read for that customer (the seed's p.load(customer)), and nothing is written there
    assert processor.calls == [
        ("retrieve_customer", "id-customer"),
        ("list_payment_methods", "id-customer"),
        ("list_subscriptions", "id-customer"),
        ("list_transactions", "id-customer"),
    ]


# ---- M12: resetProcessor with a changed payment method --------------------------------------------------------------


def test_m12_reset_processor_keeps_saved_and_changed_payment_methods_and_drops_initial_ones() -> None:
    # Given payment methods [saved, changed, initial]: the second got a new token through the seed's reuse rule
    customer = base_customer(
        addresses=[address("one")],
        payment_methods=[paypal("pm-1", "one"), card("pm-2", "one"), card("pm-3", "one", state=INITIAL)],
        default_payment_method_id="pm-2",
    )
    customer, replaced = set_default_payment_method(
        customer, NewPaymentMethod(token="pm_new", kind=PaymentMethodKind.CARD), NOW
    )
    assert (replaced.payment_method_id, replaced.processor.state) == ("pm-2", CHANGED)
    # When resetProcessor runs
    reset = reset_processor(customer)
    # Then the first two stay, the changed one saved again
    assert [(m.payment_method_id, m.processor.state) for m in reset.payment_methods] == [
        ("pm-1", SAVED),
        ("pm-2", SAVED),
    ]
    # (docs/rules.md#processor-states: the unsent new token is reverted, not kept as if it had been sent)
    assert reset.payment_methods[1].token is None
    assert reset.default_payment_method_id == "pm-2"


# ---- M16 / M19: entitlement ----------------------------------------------------------------------------------------


def check(subs: list[Subscription], when: str, valid: list[str], active: list[str]) -> None:
    customer = base_customer(subscriptions=subs)
    assert [sub.subscription_id for sub in valid_subscriptions(customer, at(when))] == valid
    assert [sub.subscription_id for sub in active_subscriptions(customer, at(when))] == active


@pytest.mark.parametrize(
    ("when", "valid"),
    [
        ("2017-06-01T08:23:00Z", ["one"]),
        ("2017-07-06T23:59:00Z", ["one"]),  # its first billing day still counts
        ("2017-07-07T00:00:00Z", []),
        ("2017-07-26T08:23:00Z", []),
    ],
    ids=["running", "last-trial-day", "day-after", "ended"],
)
def test_m16_an_ended_trial_without_paid_through_entitles_nothing_even_created_long_before(
    when: str, valid: list[str]
) -> None:
    # Given a trial created 2017-06-01 billing first on 07-06 and never paid (no paidThroughDate); unlike the seed's
    # test its creation date is in the past, so only the trial rule decides
    trial = subscription("one", is_trial=True, first_billing="2017-07-06", created="2017-06-01")
    assert trial.paid_through_date is None
    # When / Then it entitles until its first billing day only
    check([trial], when, valid, valid)


@pytest.mark.parametrize(
    ("when", "valid"),
    [("2017-01-02T12:00:00Z", ["one"]), ("2017-01-03T00:00:00Z", []), ("2017-01-10T00:00:00Z", [])],
    ids=["grace-day", "after-grace", "seed-date"],
)
def test_m19_first_billing_2016_12_01_no_longer_entitles_on_2017_01_10(when: str, valid: list[str]) -> None:
    # Given a monthly subscription created and first billed 2016-12-01 (paid through 2017-01-01); unlike the seed's
    # test it was created then, so only the paid-through date (plus one day of grace) decides
    sub = subscription("one", first_billing="2016-12-01", created="2016-12-01")
    # When / Then it entitles through 01-02 and not after
    check([sub], when, valid, valid)


# ---- M34: findOneAndValidate ----------------------------------------------------------------------------------------


@dataclass
class InMemoryTerms:
    """The plan and coupon a subscribe names, read from in-memory stores (the adapter reads them in one request).

    Both shapes of ``ports.SubscriptionTermsReader`` are answered (``read_terms`` replaced ``plan_and_coupon``
    while this file was written), so these tests do not depend on which one the service uses.
    """

    plans: dict[str, Plan]
    coupons: InMemoryCouponRepository

    def plan_and_coupon(self, plan_id: str, coupon_code: str | None) -> tuple[Plan | None, Coupon | None]:
        return self.plans.get(plan_id), self.coupons.get(coupon_code) if coupon_code else None

    def read_terms(self, plan_id: str, coupon_code: str | None, *, customer_id: str | None) -> Any:
        from usercredits.subscriptions.ports import SubscribeTerms  # type: ignore[attr-defined,unused-ignore]

        plan, coupon = self.plan_and_coupon(plan_id, coupon_code)
        used = (
            coupon is not None and customer_id is not None and self.coupons.used_by_customer(coupon.code, customer_id)
        )
        return SubscribeTerms(plan=plan, coupon=coupon, used_by_customer=used)


PRO = Plan(plan_id="pro", name="Pro", price=usd(1990), level=2, processor_plan_id="price_pro")
WHEN = at("2016-10-29")


def coupons_of_m34() -> InMemoryCouponRepository:
    def coupon(code: str, **fields: object) -> Coupon:
        return Coupon.model_validate({"code": code, "kind": CouponKind.AMOUNT, "amount": usd(1000)} | fields)

    return InMemoryCouponRepository(
        [
            coupon("EXPIRED", expire_at=at("2016-09-29")),
            coupon("USED", used_count=6, max_uses=5),
            coupon("FINE", used_count=2, max_uses=5),
        ]
    )


def customer_ports(coupons: InMemoryCouponRepository) -> tuple[InMemoryCustomerRepository, CustomerPorts]:
    customers = InMemoryCustomerRepository()
    ports = CustomerPorts(
        customers=customers,
        plans=None,  # type: ignore[arg-type]  # not read by these use cases
        coupons=coupons,
        terms=InMemoryTerms({"pro": PRO}, coupons),
        payment_methods=None,  # type: ignore[arg-type]
        clock=FixedClock(WHEN),
    )
    return customers, ports


@pytest.mark.parametrize(
    ("code", "message"),
    [("NOPE", INVALID), ("EXPIRED", EXPIRED), ("USED", LIMIT_REACHED), ("FINE", None)],
    ids=["unknown", "expired", "limit-6-of-5", "valid"],
)
def test_m34_find_one_and_validate_looks_the_coupon_up_then_answers_the_seed_message(
    code: str, message: str | None
) -> None:
    # Given coupons stored by code
    customers, ports = customer_ports(coupons_of_m34())
    # When a coupon is looked up by its code and checked (GET /coupons/{code})
    check_result = service.check_coupon(USER, code, plan_id=None, ports=ports)
    # Then the answer carries the seed's message, or is valid
    assert (check_result.valid, check_result.error) == (message is None, message)
    assert len(customers) == 0  # a check writes nothing


@pytest.mark.parametrize(
    ("code", "message"),
    [("NOPE", INVALID), ("EXPIRED", EXPIRED), ("USED", LIMIT_REACHED)],
    ids=["unknown", "expired", "limit"],
)
def test_m34_subscribing_with_a_coupon_that_fails_rejects_with_the_seed_message(code: str, message: str) -> None:
    # Given coupons stored by code
    customers, ports = customer_ports(coupons_of_m34())
    # When subscribing with one that cannot be used (findOneAndValidate rejects)
    with pytest.raises(CouponError, match=f"^{message}$"):
        service.subscribe(USER, "pro", payment_method_id=None, coupon_code=code, ports=ports)
    # Then nothing was stored
    assert len(customers) == 0


def test_m34_subscribing_with_a_valid_coupon_resolves_it_into_a_discount() -> None:
    # Given a valid coupon (2 of 5 used)
    customers, ports = customer_ports(coupons_of_m34())
    # When subscribing with it
    created = service.subscribe(USER, "pro", payment_method_id=None, coupon_code="FINE", ports=ports)
    # Then the subscription carries its discount, and the use is not counted before the sync
    assert [(d.kind, d.amount, d.coupon_code) for d in created.discounts] == [(DiscountKind.COUPON, usd(1000), "FINE")]
    stored = ports.coupons.get("FINE")
    assert stored is not None and stored.used_count == 2
    assert customers.load(USER) is not None


# ---- M35: a coupon worth nothing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("restricted", [False, True], ids=["coupon", "restricted"])
@pytest.mark.parametrize(
    "terms",
    [
        {"kind": CouponKind.AMOUNT, "amount": usd(0)},
        {"kind": CouponKind.PERCENT, "percent": Decimal("0.001")},  # rounds to 0 minor units of 19.90
    ],
    ids=["amount-0", "percent-rounding-to-0"],
)
def test_m35_a_coupon_whose_amount_is_zero_builds_no_discount(terms: dict[str, object], restricted: bool) -> None:
    # Given a coupon in its window (09-29 to 12-29), under its limit, that takes 0 off a 19.90 subscription
    coupon = Coupon.model_validate(
        {
            "code": "ZERO",
            "start_at": at("2016-09-29"),
            "expire_at": at("2016-12-29"),
            "used_count": 3,
            "max_uses": 5,
            "number_of_billing_cycles": 4,
            "restricted": restricted,
        }
        | terms
    )
    sub = subscription("sub", price=1990, created="2016-10-29")
    # When its discount is built at 2016-10-29
    built = coupon_discount(sub, coupon, at("2016-10-29"), customer_id="customer-1")
    # Then there is none
    assert built is None
