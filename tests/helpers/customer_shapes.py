"""The exact keys the customers function answers with, and checks that walk a response body against them.

Pinned here on purpose: a field added to a domain model or to a stored item must not reach a client unless the
response models map it (and this list says so).
"""

from __future__ import annotations

from typing import Any

#: What the domain and the stored items keep to stay in step with the processor; never in a response.
BOOKKEEPING = frozenset(
    {
        "version",
        "paymentLockUntil",
        "lastProcessorSave",
        "syncedFields",
        "previousId",
        "lastEventCreated",
        "lastInvoiceEventCreated",
        "transactionsPending",
    }
)

PROCESSOR = {"id", "state"}
MONEY = {"amount", "currency"}
ADDRESS_FIELDS = {
    "name",
    "company",
    "phone",
    "country",
    "locality",
    "streetAddress",
    "extendedAddress",
    "postalCode",
}
ADDRESS = ADDRESS_FIELDS | {"addressId", "processor", "createdAt", "updatedAt"}
PAYMENT_METHOD = {
    "paymentMethodId",
    "kind",
    "token",
    "billingAddressId",
    "details",
    "deleted",
    "processor",
    "createdAt",
    "updatedAt",
}
PLAN = {
    "planId",
    "name",
    "price",
    "billingFrequencyMonths",
    "level",
    "processorPlanId",
    "gracePeriodDays",
    "trialDuration",
    "trialDurationUnit",
}
DISCOUNT = {
    "discountId",
    "kind",
    "amount",
    "name",
    "numberOfBillingCycles",
    "neverExpires",
    "currentBillingCycle",
    "preserve",
    "percent",
    "couponCode",
    "customerId",
    "subscriptionId",
    "processor",
    "createdAt",
}
STATUS_CHANGE = {"status", "timestamp"}
SUBSCRIPTION = {
    "subscriptionId",
    "plan",
    "price",
    "discounts",
    "paymentMethodId",
    "status",
    "statusHistory",
    "firstBillingDate",
    "nextBillingDate",
    "paidThroughDate",
    "billingPeriodStartDate",
    "billingPeriodEndDate",
    "billingDayOfMonth",
    "currentBillingCycle",
    "failureCount",
    "daysPastDue",
    "isTrial",
    "trialDuration",
    "trialDurationUnit",
    "descriptor",
    "cancelAtPeriodEnd",
    "deleted",
    "replaces",
    "processor",
    "createdAt",
    "updatedAt",
}
TRANSACTION = {
    "transactionId",
    "kind",
    "amount",
    "status",
    "statusHistory",
    "subscriptionId",
    "planProcessorId",
    "refundedTransactionId",
    "periodStart",
    "periodEnd",
    "dispute",
    "billing",
    "customer",
    "discounts",
    "descriptor",
    "instrument",
    "processor",
    "createdAt",
    "updatedAt",
}
TRANSACTION_CUSTOMER = {"name", "email", "phone", "company"}
TRANSACTION_DISCOUNT = {"amount", "name"}
CUSTOMER = {
    "customerId",
    "userId",
    "name",
    "email",
    "phone",
    "ipAddress",
    "metadata",
    "addresses",
    "paymentMethods",
    "defaultPaymentMethodId",
    "subscriptions",
    "transactions",
    "processor",
    "createdAt",
    "updatedAt",
}
COUPON = {
    "code",
    "name",
    "description",
    "kind",
    "amount",
    "percent",
    "numberOfBillingCycles",
    "startAt",
    "expireAt",
    "maxUses",
    "usedCount",
    "restricted",
    "createdAt",
    "updatedAt",
}
COUPON_CHECK = {"valid", "error", "amount"}


def keys_anywhere(body: Any) -> set[str]:
    """Every key of every object in a JSON body, however deep."""
    if isinstance(body, dict):
        return set(body).union(*(keys_anywhere(value) for value in body.values()))
    if isinstance(body, list):
        return set().union(*(keys_anywhere(value) for value in body))
    return set()


def assert_address(body: dict[str, Any]) -> None:
    assert set(body) == ADDRESS
    assert set(body["processor"]) == PROCESSOR


def assert_payment_method(body: dict[str, Any]) -> None:
    assert set(body) == PAYMENT_METHOD
    assert set(body["processor"]) == PROCESSOR


def assert_plan(body: dict[str, Any]) -> None:
    assert set(body) == PLAN
    assert set(body["price"]) == MONEY


def assert_subscription(body: dict[str, Any]) -> None:
    assert set(body) == SUBSCRIPTION
    assert set(body["processor"]) == PROCESSOR
    assert_plan(body["plan"])
    for discount in body["discounts"]:
        assert set(discount) == DISCOUNT
        assert set(discount["processor"]) == PROCESSOR
    for change in body["statusHistory"]:
        assert set(change) == STATUS_CHANGE


def assert_transaction(body: dict[str, Any]) -> None:
    assert set(body) == TRANSACTION
    assert set(body["processor"]) == PROCESSOR
    assert body["billing"] is None or set(body["billing"]) == ADDRESS_FIELDS
    assert body["customer"] is None or set(body["customer"]) == TRANSACTION_CUSTOMER
    for discount in body["discounts"]:
        assert set(discount) == TRANSACTION_DISCOUNT
    for change in body["statusHistory"]:
        assert set(change) == STATUS_CHANGE


def assert_customer(body: dict[str, Any]) -> None:
    """The customer's keys, its children's, and no bookkeeping anywhere in it."""
    assert set(body) == CUSTOMER
    assert set(body["processor"]) == PROCESSOR
    for address in body["addresses"]:
        assert_address(address)
    for method in body["paymentMethods"]:
        assert_payment_method(method)
    for subscription in body["subscriptions"]:
        assert_subscription(subscription)
    for transaction in body["transactions"]:
        assert_transaction(transaction)
    assert not keys_anywhere({k: v for k, v in body.items() if k != "metadata"}) & BOOKKEEPING


def assert_coupon(body: dict[str, Any]) -> None:
    assert set(body) == COUPON
