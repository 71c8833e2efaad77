"""Test data for the subscriptions half: the base customer of the original library's acceptance scenarios (Mxx labels;
rules in docs/rules.md#subscriptions-half) and small builders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from usercredits.errors import InvalidRequestError
from usercredits.kernel.cycles import add_months
from usercredits.kernel.models import Money
from usercredits.subscriptions.discounts import new_discount
from usercredits.subscriptions.entitlement import start_of_day
from usercredits.subscriptions.instruments import CardDetails, PaymentMethodKind, PayPalDetails
from usercredits.subscriptions.models import (
    Address,
    Customer,
    Descriptor,
    Discount,
    DiscountKind,
    PaymentMethod,
    Plan,
    ProcessorItem,
    ProcessorState,
    Subscription,
    SubscriptionStatus,
    SyncableModel,
)
from usercredits.subscriptions.tracking import mark_saved

NOW = datetime(2017, 7, 16, 9, 34, 37, tzinfo=UTC)


def at(text: str) -> datetime:
    """A UTC datetime from ISO text ("2017-01-10" is midnight UTC, as JavaScript's Date reads it)."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="usd")


def plan(level: int = 1, price: int = 1000, months: int = 1, plan_id: str | None = None) -> Plan:
    return Plan(
        plan_id=plan_id or f"plan-l{level}",
        name=f"Level {level}",
        price=usd(price),
        billing_frequency_months=months,
        level=level,
        processor_plan_id=f"price_l{level}",
    )


def with_state[S: SyncableModel](item: S, state: ProcessorState, processor_id: str | None = None) -> S:
    """``item`` as synced (saved/changed need a processor id and a snapshot), local or initial."""
    if state is ProcessorState.INITIAL:
        return item
    if state is ProcessorState.LOCAL:
        return item.model_copy(update={"processor": ProcessorItem(state=ProcessorState.LOCAL)})
    saved = mark_saved(item, processor_id or f"proc-{item.local_id}")
    if state is ProcessorState.CHANGED:
        return saved.model_copy(update={"processor": saved.processor.model_copy(update={"state": state})})
    return saved


def subscription(
    subscription_id: str,
    *,
    level: int = 2,
    price: int = 1000,
    months: int = 1,
    status: SubscriptionStatus | None = SubscriptionStatus.ACTIVE,
    state: ProcessorState = ProcessorState.SAVED,
    created: str | None = None,
    first_billing: str | None = None,
    paid_through: str | None = None,
    period_start: str | None = None,
    period_end: str | None = None,
    is_trial: bool = False,
    deleted: bool = False,
    discounts: list[Discount] | None = None,
) -> Subscription:
    """A subscription with its dates filled as the seed's test helper initializeSubscriptionDates does.

    First billing defaults to the creation day; a non-trial is paid through one billing frequency later, its period
    ends then and the next billing is a day after. A trial gets no paid-through date.
    """
    created_at = at(created) if created else at(first_billing or "2017-01-01")
    first = start_of_day(at(first_billing) if first_billing else created_at)
    dates: dict[str, object] = {"first_billing_date": first}
    if is_trial:
        dates["next_billing_date"] = first
    else:
        through = at(paid_through) if paid_through else start_of_day(add_months(first, months))
        dates |= {
            "paid_through_date": through,
            "next_billing_date": through + timedelta(days=1),
            "billing_period_start_date": at(period_start) if period_start else first,
            "billing_period_end_date": at(period_end) if period_end else through,
            "billing_day_of_month": (through + timedelta(days=1)).day,
        }
    sub = Subscription(
        subscription_id=subscription_id,
        plan=plan(level=level, price=price, months=months),
        price=usd(price),
        status=status,
        is_trial=is_trial,
        deleted=deleted,
        discounts=discounts or [],
        payment_method_id="three",
        created_at=created_at,
        **dates,
    )
    return with_state(sub, state, f"sub-{subscription_id}")


def discount(
    amount: int,
    *,
    cycles: int = 1,
    current: int = 0,
    kind: DiscountKind = DiscountKind.AMOUNT,
    preserve: bool = False,
    discount_id: str | None = None,
) -> Discount:
    extra: dict[str, object] = {}
    if kind is DiscountKind.PERCENT:
        extra["percent"] = Decimal(amount) / 20  # the amount's share of a 20.00 price, as in the seed's tests
    if kind is DiscountKind.PREVIOUS_SUBSCRIPTION:
        extra["subscription_id"] = "previous"
    return Discount(
        discount_id=discount_id or f"d-{kind}-{amount}-{cycles}-{current}",
        kind=kind,
        amount=usd(amount),
        number_of_billing_cycles=cycles,
        current_billing_cycle=current,
        preserve=preserve,
        created_at=NOW,
        **extra,
    )


def address(address_id: str, state: ProcessorState = ProcessorState.SAVED, **fields: object) -> Address:
    item = Address(address_id=address_id, created_at=at("2017-01-01"), **fields)
    return with_state(item, state, f"id-address-{address_id}")


def paypal(
    payment_method_id: str, billing: str | None = None, state: ProcessorState = ProcessorState.SAVED
) -> PaymentMethod:
    item = PaymentMethod(
        payment_method_id=payment_method_id,
        kind=PaymentMethodKind.PAYPAL,
        details=PayPalDetails(email="test@example.com"),
        billing_address_id=billing,
        created_at=at("2017-01-01"),
    )
    return with_state(item, state, f"id-pm-{payment_method_id}")


def card(
    payment_method_id: str, billing: str | None = None, state: ProcessorState = ProcessorState.SAVED
) -> PaymentMethod:
    item = PaymentMethod(
        payment_method_id=payment_method_id,
        kind=PaymentMethodKind.CARD,
        details=CardDetails(brand="visa", last4="4242"),
        billing_address_id=billing,
        created_at=at("2017-01-01"),
    )
    return with_state(item, state, f"id-pm-{payment_method_id}")


def base_customer(**overrides: object) -> Customer:
    """The seed's base customer: Pesho Peshev with address ``one``, PayPal ``three`` (default) and subscription
    ``four`` (plan 4.00 every 3 months, level 2; price 13.20; first billing 2017-02-03), all saved."""
    four = Subscription(
        subscription_id="four",
        plan=Plan(plan_id="id-plan", name="Pro", price=usd(400), billing_frequency_months=3, level=2),
        price=usd(1320),
        status=SubscriptionStatus.ACTIVE,
        descriptor=Descriptor(name="Enhancv*Pro Plan", url="enhancv.com"),
        first_billing_date=at("2017-02-03"),
        paid_through_date=at("2017-05-03"),
        billing_period_start_date=at("2017-02-03"),
        billing_period_end_date=at("2017-05-03"),
        payment_method_id="three",
        created_at=at("2017-02-03"),
    )
    fields: dict[str, object] = {
        "customer_id": "customer-1",
        "user_id": "pesho",
        "name": "Pesho Peshev",
        "email": "seer@example.com",
        "ip_address": "10.0.0.2",
        "default_payment_method_id": "three",
        "addresses": [address("one", name="Pesho Peshev Stoevski", country="BG", postal_code="1000")],
        "payment_methods": [paypal("three", billing="one")],
        "subscriptions": [with_state(four, ProcessorState.SAVED, "id-subscription")],
        "created_at": at("2017-01-01"),
    }
    fields |= overrides
    return with_state(Customer.model_validate(fields), ProcessorState.SAVED, "id-customer")


def amount_discount(subscription: Subscription, name: str, amount: Money, now: datetime) -> Discount | None:
    """A fixed discount of ``amount`` (at most the subscription's price, in its currency), or None when that is zero."""
    _same_currency(subscription, amount)
    capped = min(amount.amount, subscription.price.amount)
    if capped == 0:
        return None
    return new_discount(DiscountKind.AMOUNT, subscription, capped, now, name=name)


def _same_currency(subscription: Subscription, amount: Money) -> None:
    if amount.currency != subscription.price.currency:
        raise InvalidRequestError(
            f"a discount in {amount.currency} cannot apply to a price in {subscription.price.currency}"
        )
