"""Customers function: the caller's customer, addresses, payment methods, subscriptions, coupons, and the plans and
coupons admins define (docs/api.md#customers-plans-subscriptions-and-coupons-customersfunction)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from customers.responses import (
    AddressResponse,
    CouponCheckResponse,
    CouponResponse,
    CurrentSubscriptionResponse,
    CustomerResponse,
    CustomerSubscriptionResponse,
    PaymentMethodResponse,
    PlanResponse,
    SubscriptionsResponse,
    TransactionResponse,
    address_response,
    coupon_response,
    customer_response,
    payment_method_response,
    plan_response,
    subscription_response,
    transaction_response,
)
from customers.schemas import (
    AddAddressRequest,
    AddPaymentMethodRequest,
    CancelSubscriptionRequest,
    DefaultPaymentMethodRequest,
    LocalSubscriptionRequest,
    PutCouponRequest,
    PutPlanRequest,
    RefundRequest,
    SubscribeRequest,
    SubscriptionPaymentMethodRequest,
    UpdateCustomerRequest,
)
from usercredits.adapters.clock import build_clock
from usercredits.adapters.dynamodb.coupons import DynamoCouponRepository
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.dynamodb.customers_table import CustomersItem
from usercredits.adapters.dynamodb.plans import DynamoPlanRepository, DynamoSubscriptionTermsReader
from usercredits.adapters.local_payment_methods import LocalPaymentMethodLookup
from usercredits.adapters.stripe.billing import StripeSubscriptionProcessor
from usercredits.errors import ConflictError, InvalidRequestError
from usercredits.http import (
    HttpApiResolver,
    IdempotencyKeyHeader,
    IdentifierPath,
    UserPath,
    api_responses,
    current_caller,
    register_error_handlers,
    require_admin,
    resolve,
)
from usercredits.observability import logger, metrics
from usercredits.settings import CustomersSettings, get_customers_settings
from usercredits.snapstart import prime_before_snapshot
from usercredits.subscriptions import cancelling, loading, money_back, saving, service
from usercredits.subscriptions.models import Plan, ProfileFields
from usercredits.subscriptions.ports import (
    CustomerPorts,
    PaymentMethodLookup,
    ProcessorPaymentMethod,
    SubscriptionProcessor,
    SyncPorts,
)

app = HttpApiResolver()
register_error_handlers(app)

S = HTTPStatus


@dataclass(frozen=True)
class Dependencies:
    settings: CustomersSettings
    ports: CustomerPorts


class _ProcessorLookup:
    """Payment method tokens checked with the processor (built, and its secret read, on the first lookup)."""

    def retrieve_payment_method(self, token: str) -> ProcessorPaymentMethod | None:
        return processor().retrieve_payment_method(token)


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built from the settings on first use (none at import time)."""
    settings = get_customers_settings()
    lookup: PaymentMethodLookup = (
        LocalPaymentMethodLookup() if settings.PAYMENT_PROVIDER == "local" else _ProcessorLookup()
    )
    ports = CustomerPorts(
        customers=DynamoCustomerRepository(),
        plans=DynamoPlanRepository(),
        coupons=DynamoCouponRepository(),
        terms=DynamoSubscriptionTermsReader(),
        payment_methods=lookup,
        clock=build_clock(settings),
    )
    return Dependencies(settings=settings, ports=ports)


@lru_cache
def processor() -> SubscriptionProcessor:
    """Stripe's subscriptions API, with the key from Secrets Manager; built on the first route that needs it (so
    the other routes never read the secret). The local provider's is the dev server's Stripe simulation
    (``LOCAL_STRIPE_API_BASE``, through the same adapter); without one, those routes answer 409."""
    settings = dependencies().settings
    if settings.PAYMENT_PROVIDER == "local":
        if not settings.LOCAL_STRIPE_API_BASE:
            raise ConflictError(
                "the local payment provider has no subscription processor here: sync, reload, refunds and voids "
                "need the dev server's Stripe simulation (make run) or Stripe (PAYMENT_PROVIDER=stripe)"
            )
        return StripeSubscriptionProcessor("sk_test_local", api_base=settings.LOCAL_STRIPE_API_BASE)
    return StripeSubscriptionProcessor.from_secret(settings.STRIPE_SECRET_NAME)


def sync_ports() -> SyncPorts:
    ports = dependencies().ports
    return SyncPorts(customers=ports.customers, coupons=ports.coupons, processor=processor(), clock=ports.clock)


def _user() -> str:
    return current_caller(app).user_id


def _default_grace() -> timedelta:
    """The grace period of plans that set none (the ``SUBSCRIPTION_GRACE_DAYS`` setting)."""
    return timedelta(days=dependencies().settings.SUBSCRIPTION_GRACE_DAYS)


@app.get("/customer", responses=api_responses(S.OK))
def handle_get_customer() -> CustomerResponse:
    return customer_response(service.get_customer(_user(), ports=dependencies().ports))


@app.put("/customer", responses=api_responses(S.OK))
def handle_update_customer(body: Annotated[UpdateCustomerRequest, Body()]) -> CustomerResponse:
    fields = ProfileFields.model_validate(body.model_dump(exclude_unset=True))
    return customer_response(service.update_profile(_user(), fields, ports=dependencies().ports))


@app.post("/customer/addresses", status_code=S.CREATED, responses=api_responses(S.CREATED, S.CONFLICT))
def handle_add_address(
    body: Annotated[AddAddressRequest, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> AddressResponse:
    address = service.add_address(_user(), body, ports=dependencies().ports, request_key=idempotency_key)
    metrics.add_metric(name="AddressesAdded", unit=MetricUnit.Count, value=1)
    return address_response(address)


@app.post(
    "/customer/payment-methods", status_code=S.CREATED, responses=api_responses(S.CREATED, S.NOT_FOUND, S.CONFLICT)
)
def handle_add_payment_method(
    body: Annotated[AddPaymentMethodRequest, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> PaymentMethodResponse:
    method = service.add_payment_method(
        _user(),
        body.token,
        billing_address_id=body.billing_address_id,
        make_default=body.make_default,
        ports=dependencies().ports,
        request_key=idempotency_key,
    )
    metrics.add_metric(name="PaymentMethodsAdded", unit=MetricUnit.Count, value=1)
    return payment_method_response(method)


@app.put("/customer/default-payment-method", responses=api_responses(S.OK, S.NOT_FOUND))
def handle_set_default_payment_method(body: Annotated[DefaultPaymentMethodRequest, Body()]) -> CustomerResponse:
    ports = dependencies().ports
    if body.token is not None:
        customer = service.replace_default_payment_method(_user(), body.token, address=body.address, ports=ports)
    else:
        assert body.payment_method_id is not None  # the request checks one of the two is given
        customer = service.set_default_payment_method(
            _user(), body.payment_method_id, address=body.address, ports=ports
        )
    return customer_response(customer)


@app.post("/customer/subscriptions", status_code=S.CREATED, responses=api_responses(S.CREATED, S.NOT_FOUND, S.CONFLICT))
def handle_subscribe(
    body: Annotated[SubscribeRequest, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> CustomerSubscriptionResponse:
    subscription = service.subscribe(
        _user(),
        body.plan_id,
        payment_method_id=body.payment_method_id,
        coupon_code=body.coupon_code,
        ports=dependencies().ports,
        request_key=idempotency_key,
        trial=body.trial,
        descriptor=body.descriptor,
        grace=_default_grace(),
    )
    metrics.add_metric(name="SubscriptionsCreated", unit=MetricUnit.Count, value=1)
    return subscription_response(subscription)


@app.post(
    "/customer/subscriptions/<subscriptionId>/cancel",
    responses=api_responses(S.OK, S.NOT_FOUND, S.CONFLICT, S.BAD_GATEWAY),
)
def handle_cancel_subscription(
    subscriptionId: IdentifierPath,  # noqa: N803 - the contract's path parameter name
    body: Annotated[CancelSubscriptionRequest | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> CustomerSubscriptionResponse:
    """Cancel now or at period end, at the processor in the same request (a never-synced one is withdrawn)."""
    at_period_end = body.at_period_end if body is not None else False
    canceled = cancelling.cancel_subscription(
        _user(),
        subscriptionId,
        at_period_end=at_period_end,
        ports=dependencies().ports,
        processor=sync_ports,
        request_key=idempotency_key,
    )
    metrics.add_metric(name="SubscriptionsCanceled", unit=MetricUnit.Count, value=1)
    return subscription_response(canceled)


@app.post("/customer/subscriptions/cancel-all", responses=api_responses(S.OK, S.CONFLICT, S.BAD_GATEWAY))
def handle_cancel_all_subscriptions(
    body: Annotated[CancelSubscriptionRequest | None, Body()] = None, idempotency_key: IdempotencyKeyHeader = None
) -> SubscriptionsResponse:
    """cancelSubscriptions: every running or queued subscription canceled (now or at period end), at the processor
    in the same request; the customer's subscriptions as they stand after it."""
    at_period_end = body.at_period_end if body is not None else False
    subscriptions = cancelling.cancel_all_subscriptions(
        _user(),
        at_period_end=at_period_end,
        ports=dependencies().ports,
        processor=sync_ports,
        request_key=idempotency_key,
    )
    return SubscriptionsResponse(subscriptions=[subscription_response(subscription) for subscription in subscriptions])


@app.put("/customer/subscriptions/<subscriptionId>/payment-method", responses=api_responses(S.OK, S.NOT_FOUND))
def handle_set_subscription_payment_method(
    subscriptionId: IdentifierPath,  # noqa: N803 - the contract's path parameter name
    body: Annotated[SubscriptionPaymentMethodRequest, Body()],
) -> CustomerSubscriptionResponse:
    """Pay a subscription with another of the customer's payment methods (sent with the next sync)."""
    subscription = service.set_subscription_payment_method(
        _user(), subscriptionId, body.payment_method_id, ports=dependencies().ports
    )
    return subscription_response(subscription)


@app.get("/customer/subscriptions", responses=api_responses(S.OK))
def handle_list_subscriptions(
    at: Annotated[AwareDatetime | None, Query()] = None,
    valid: Annotated[bool, Query()] = False,
    active: Annotated[bool, Query()] = False,
) -> SubscriptionsResponse:
    found = service.list_subscriptions(
        _user(), at=at, valid=valid, active=active, ports=dependencies().ports, grace=_default_grace()
    )
    return SubscriptionsResponse(subscriptions=[subscription_response(subscription) for subscription in found])


@app.get("/customer/subscription", responses=api_responses(S.OK))
def handle_current_subscription(at: Annotated[AwareDatetime | None, Query()] = None) -> CurrentSubscriptionResponse:
    found = service.current_subscription(_user(), at=at, ports=dependencies().ports, grace=_default_grace())
    return CurrentSubscriptionResponse(subscription=None if found is None else subscription_response(found))


@app.get("/coupons/<code>", responses=api_responses(S.OK, S.NOT_FOUND))
def handle_check_coupon(
    code: IdentifierPath, plan_id: Annotated[str | None, Query(alias="planId", max_length=128)] = None
) -> CouponCheckResponse:
    check = service.check_coupon(_user(), code, plan_id=plan_id, ports=dependencies().ports)
    return CouponCheckResponse(valid=check.valid, error=check.error, amount=check.amount)


@app.put("/admin/plans/<planId>", responses=api_responses(S.OK, S.FORBIDDEN))
def handle_put_plan(planId: IdentifierPath, body: Annotated[PutPlanRequest, Body()]) -> PlanResponse:  # noqa: N803
    require_admin(app)
    if body.plan_id is not None and body.plan_id != planId:
        raise InvalidRequestError(f"body planId {body.plan_id!r} differs from the path's {planId!r}")
    plan = Plan(**{**body.model_dump(exclude={"plan_id"}), "plan_id": planId})
    saved = service.put_plan(plan, ports=dependencies().ports)
    metrics.add_metric(name="PlansUpserted", unit=MetricUnit.Count, value=1)
    return plan_response(saved)


@app.put("/admin/coupons/<code>", responses=api_responses(S.OK, S.FORBIDDEN))
def handle_put_coupon(code: IdentifierPath, body: Annotated[PutCouponRequest, Body()]) -> CouponResponse:
    require_admin(app)
    if body.code is not None and body.code != code:
        raise InvalidRequestError(f"body code {body.code!r} differs from the path's {code!r}")
    saved = service.put_coupon(code, body.model_dump(exclude={"code"}), ports=dependencies().ports)
    metrics.add_metric(name="CouponsUpserted", unit=MetricUnit.Count, value=1)
    return coupon_response(saved)


@app.post("/customer/sync", responses=api_responses(S.OK, S.CONFLICT))
def handle_sync(idempotency_key: IdempotencyKeyHeader = None) -> CustomerResponse:
    """saveProcessor: push local changes to the processor (customer, payment methods, subscriptions)."""
    customer = saving.save_processor(_user(), sync_ports(), idempotency_key)
    metrics.add_metric(name="CustomersSynced", unit=MetricUnit.Count, value=1)
    return customer_response(customer)


@app.post("/customer/reload", responses=api_responses(S.OK, S.CONFLICT))
def handle_reload(idempotency_key: IdempotencyKeyHeader = None) -> CustomerResponse:
    """loadProcessor: pull the processor's state and merge it by processor id."""
    return customer_response(loading.load_processor(_user(), sync_ports(), idempotency_key))


@app.post(
    "/admin/customers/<userId>/transactions/<transactionId>/refund",
    responses=api_responses(S.OK, S.FORBIDDEN, S.NOT_FOUND, S.CONFLICT),
)
def handle_refund(
    userId: UserPath,  # noqa: N803 - the contract's path parameter names
    transactionId: IdentifierPath,  # noqa: N803
    body: Annotated[RefundRequest | None, Body()] = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> TransactionResponse:
    require_admin(app)
    amount = body.amount if body is not None else None
    refund = money_back.refund_transaction(userId, transactionId, amount, sync_ports(), idempotency_key)
    metrics.add_metric(name="TransactionsRefunded", unit=MetricUnit.Count, value=1)
    return transaction_response(refund)


@app.post(
    "/admin/customers/<userId>/transactions/<transactionId>/void",
    responses=api_responses(S.OK, S.FORBIDDEN, S.NOT_FOUND, S.CONFLICT),
)
def handle_void(
    userId: UserPath,  # noqa: N803 - the contract's path parameter names
    transactionId: IdentifierPath,  # noqa: N803
    idempotency_key: IdempotencyKeyHeader = None,
) -> TransactionResponse:
    require_admin(app)
    voided = money_back.void_transaction(userId, transactionId, sync_ports(), idempotency_key)
    metrics.add_metric(name="TransactionsVoided", unit=MetricUnit.Count, value=1)
    return transaction_response(voided)


@app.post(
    "/admin/customers/<userId>/reset-processor",
    responses=api_responses(S.OK, S.FORBIDDEN, S.NOT_FOUND, S.CONFLICT),
)
def handle_reset_processor(
    userId: UserPath,  # noqa: N803 - the contract's path parameter name
    idempotency_key: IdempotencyKeyHeader = None,
) -> CustomerResponse:
    """resetProcessor: drop what never reached the processor and revert unsynced edits (no processor call)."""
    require_admin(app)
    customer = cancelling.reset_processor(userId, ports=dependencies().ports, request_key=idempotency_key)
    return customer_response(customer)


@app.post(
    "/admin/customers/<userId>/subscriptions",
    status_code=S.CREATED,
    responses=api_responses(S.CREATED, S.FORBIDDEN, S.NOT_FOUND),
)
def handle_grant_local_subscription(
    userId: UserPath,  # noqa: N803 - the contract's path parameter name
    body: Annotated[LocalSubscriptionRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> CustomerSubscriptionResponse:
    """Give a user an app-managed (``local``) subscription: entitled like any other, never sent to Stripe, never
    billed (a comp, or a trial the app gives)."""
    require_admin(app)
    subscription = service.grant_local_subscription(
        userId, body.plan_id, trial=body.trial, ports=dependencies().ports, request_key=idempotency_key
    )
    metrics.add_metric(name="LocalSubscriptionsGranted", unit=MetricUnit.Count, value=1)
    return subscription_response(subscription)


@app.get("/admin/customers/<userId>", responses=api_responses(S.OK, S.FORBIDDEN, S.NOT_FOUND))
def handle_admin_get_customer(userId: UserPath) -> CustomerResponse:  # noqa: N803
    require_admin(app)
    return customer_response(service.get_customer_for_admin(userId, ports=dependencies().ports))


# SnapStart: built before the snapshot, not on a restored environment's first request (usercredits.snapstart).
prime_before_snapshot(dependencies, tables=[CustomersItem], modules=["stripe"], openapi=app.get_openapi_schema)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """HTTP API (payload 2.0) entry point; answers every request with the contract's JSON (errors included)."""
    return resolve(app, event, context)


__all__ = ["app", "lambda_handler"]
