"""Plans in the customers table (one item per plan, and a copy under ``PLANS`` so listing them is one Query), and
what a subscribe reads: the plan, the coupon and whether the customer used it, in one request."""

from __future__ import annotations

from datetime import datetime

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from usercredits.adapters.dynamodb.coupons import item_to_coupon
from usercredits.adapters.dynamodb.customers import customers_connection
from usercredits.adapters.dynamodb.customers_table import CouponItem, CouponRedemptionItem, CustomersItem, PlanItem
from usercredits.adapters.dynamodb.errors import (
    translate_errors,
)
from usercredits.adapters.dynamodb.keys import COUPON_SK, PLAN_SK, PLANS_PK, coupon_pk, customer_use_sk, plan_pk
from usercredits.adapters.dynamodb.model_base import MoneyAttribute
from usercredits.kernel.models import Money
from usercredits.subscriptions.models import (
    Coupon,
    Plan,
    TrialUnit,
)
from usercredits.subscriptions.ports import (
    SubscribeTerms,
)


def plan_to_item(plan: Plan, now: datetime, *, pk: str, sk: str) -> PlanItem:
    return PlanItem(
        pk=pk,
        sk=sk,
        plan_id=plan.plan_id,
        name=plan.name,
        price=MoneyAttribute(amount=plan.price.amount, currency=plan.price.currency),
        billing_frequency_months=plan.billing_frequency_months,
        level=plan.level,
        processor_plan_id=plan.processor_plan_id,
        grace_period_days=plan.grace_period_days,
        trial_duration=plan.trial_duration,
        trial_duration_unit=plan.trial_duration_unit,
        updated_at=now,
    )


def item_to_plan(item: PlanItem) -> Plan:
    return Plan(
        plan_id=item.plan_id,
        name=item.name,
        price=Money(amount=int(item.price.amount), currency=item.price.currency),
        billing_frequency_months=int(item.billing_frequency_months),
        level=int(item.level),
        processor_plan_id=item.processor_plan_id,
        grace_period_days=None if item.grace_period_days is None else int(item.grace_period_days),
        trial_duration=None if item.trial_duration is None else int(item.trial_duration),
        trial_duration_unit=None if item.trial_duration_unit is None else TrialUnit(item.trial_duration_unit),
    )


class DynamoPlanRepository:
    """``PlanRepository``: a plan is ``PLAN#<id>`` / ``PLAN``, and a copy under ``PLANS`` / ``PLAN#<id>`` written in
    the same transaction makes listing them one Query."""

    @translate_errors
    def get(self, plan_id: str) -> Plan | None:
        try:
            item = PlanItem.get(plan_pk(plan_id), PLAN_SK, consistent_read=True)
        except DoesNotExist:
            return None
        return item_to_plan(item)

    @translate_errors
    def list_plans(self) -> list[Plan]:
        return [item_to_plan(item) for item in PlanItem.query(PLANS_PK, PlanItem.sk.startswith("PLAN#"))]

    @translate_errors
    def put(self, plan: Plan, now: datetime) -> Plan:
        with TransactWrite(connection=customers_connection()) as transaction:
            transaction.save(plan_to_item(plan, now, pk=plan_pk(plan.plan_id), sk=PLAN_SK))
            transaction.save(plan_to_item(plan, now, pk=PLANS_PK, sk=plan_pk(plan.plan_id)))
        return plan


class DynamoSubscriptionTermsReader:
    """A plan, a coupon and the customer's use of it in one BatchGetItem (a GetItem when no coupon is named):
    ``POST /customer/subscriptions`` then stays at three requests (Query the customer, this read, the save)."""

    @translate_errors
    def read_terms(self, plan_id: str, coupon_code: str | None, *, customer_id: str | None) -> SubscribeTerms:
        if coupon_code is None:
            return SubscribeTerms(DynamoPlanRepository().get(plan_id))
        plan: Plan | None = None
        coupon: Coupon | None = None
        used = False
        keys = [(plan_pk(plan_id), PLAN_SK), (coupon_pk(coupon_code), COUPON_SK)]
        if customer_id is not None:
            keys.append((coupon_pk(coupon_code), customer_use_sk(customer_id)))
        for item in CustomersItem.batch_get(keys, consistent_read=True):
            if isinstance(item, PlanItem):
                plan = item_to_plan(item)
            elif isinstance(item, CouponItem):
                coupon = item_to_coupon(item)
            elif isinstance(item, CouponRedemptionItem):
                used = True
        return SubscribeTerms(plan, coupon, used)
