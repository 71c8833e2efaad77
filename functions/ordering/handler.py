"""Ordering function: the offer catalog, orders and payment intents.

Routes: docs/api.md#offers-and-orders-orderingfunction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from ordering.schemas import (
    AllOffersResponse,
    CreateOrderRequest,
    OffersResponse,
    OrdersResponse,
    OrderWithPayment,
    PutGroupPolicyRequest,
    PutOfferRequest,
    SubscriptionResponse,
)
from usercredits.adapters.clock import build_clock
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits_table import CreditsItem
from usercredits.adapters.dynamodb.orders import DynamoOrderRepository
from usercredits.adapters.payments import build_payment_gateway
from usercredits.domain import offers, order_reads, ordering
from usercredits.domain import payments as payment_outcomes
from usercredits.domain.models import GroupPolicy, Offer, OfferView, Order, OrderStatus
from usercredits.domain.ports import CatalogRepository, OrderRepository, PaymentGateway, RefundPorts
from usercredits.errors import InvalidRequestError
from usercredits.http import (
    HttpApiResolver,
    IdempotencyKeyHeader,
    IdentifierPath,
    api_responses,
    current_caller,
    register_error_handlers,
    require_admin,
    resolve,
)
from usercredits.kernel.clock import Clock
from usercredits.kernel.currencies import is_known_currency
from usercredits.observability import logger, metrics
from usercredits.settings import OrderingSettings, get_ordering_settings
from usercredits.snapstart import prime_before_snapshot

app = HttpApiResolver()
register_error_handlers(app)

S = HTTPStatus


@dataclass(frozen=True)
class Dependencies:
    settings: OrderingSettings
    catalog: CatalogRepository
    orders: OrderRepository
    payments: PaymentGateway
    clock: Clock


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built from the settings on first use (none at import time)."""
    settings = get_ordering_settings()
    return Dependencies(
        settings=settings,
        catalog=DynamoCatalogRepository(cache_seconds=settings.CATALOG_CACHE_SECONDS),
        orders=DynamoOrderRepository(),
        payments=build_payment_gateway(settings),
        clock=build_clock(settings),
    )


@lru_cache
def refund_ports() -> RefundPorts:
    """What settling a refund that came before the payment needs (confirm only: built on first confirm, its
    modules imported then, so the catalog and order routes do not pay for them at cold start)."""
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.adapters.dynamodb.reversals import DynamoReversalRepository

    deps = dependencies()
    return RefundPorts(
        orders=deps.orders,
        credits=DynamoCreditsRepository(),
        catalog=deps.catalog,
        reversals=DynamoReversalRepository(),
        clock=deps.clock,
    )


def _currency(value: str | None) -> str:
    currency = value or dependencies().settings.DEFAULT_CURRENCY
    if not is_known_currency(currency):
        raise InvalidRequestError(f"unknown currency {currency!r} (use an ISO 4217 code in lower case)")
    return currency


def _tags(values: list[str] | None) -> list[str]:
    # Accept both ?tags=a&tags=b and ?tags=a,b (API Gateway joins repeated values with commas).
    return [tag for value in values or [] for tag in value.split(",") if tag]


@app.get("/offers", responses=api_responses(S.OK))
def handle_list_offers(
    currency: Annotated[str | None, Query(pattern=r"^[a-z]{3}$")] = None,
    tags: Annotated[list[str] | None, Query(max_length=50)] = None,
    all_tags: Annotated[bool, Query(alias="allTags")] = False,
) -> OffersResponse:
    deps = dependencies()
    shown = offers.list_offers(
        current_caller(app),
        currency=_currency(currency),
        tags=_tags(tags),
        all_tags=all_tags,
        catalog=deps.catalog,
        orders=deps.orders,
        clock=deps.clock,
    )
    return OffersResponse(offers=shown)


@app.get("/offers/<offerId>", responses=api_responses(S.OK, S.NOT_FOUND))
def handle_get_offer(offerId: IdentifierPath) -> Offer:  # noqa: N803 - the contract's path parameter name
    current_caller(app)
    return offers.get_offer(offerId, catalog=dependencies().catalog)


@app.post(
    "/orders",
    status_code=S.CREATED,
    responses=api_responses(S.CREATED, S.FORBIDDEN, S.NOT_FOUND, S.CONFLICT),
)
def handle_create_order(
    body: Annotated[CreateOrderRequest, Body()], idempotency_key: IdempotencyKeyHeader = None
) -> OrderWithPayment:
    deps = dependencies()
    command = ordering.PlaceOrder(body.offer_id, body.quantity, body.currency, body.starts, idempotency_key)
    placed = ordering.place_order(
        command,
        current_caller(app),
        default_currency=deps.settings.DEFAULT_CURRENCY,
        catalog=deps.catalog,
        orders=deps.orders,
        payments=deps.payments,
        clock=deps.clock,
    )
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    return OrderWithPayment(order=placed.order, payment=placed.payment)


@app.get("/orders", responses=api_responses(S.OK))
def handle_list_orders(
    status: Annotated[OrderStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
) -> OrdersResponse:
    page = order_reads.list_orders(
        current_caller(app), status=status, limit=limit, cursor=cursor, orders=dependencies().orders
    )
    return OrdersResponse(orders=page.items, next_cursor=page.next_cursor)


@app.get("/orders/<orderId>", responses=api_responses(S.OK, S.NOT_FOUND))
def handle_get_order(orderId: IdentifierPath) -> Order:  # noqa: N803
    return order_reads.get_order(orderId, current_caller(app), orders=dependencies().orders)


@app.post(
    "/orders/<orderId>/payment",
    responses=api_responses(S.OK, S.NOT_FOUND, S.CONFLICT),
)
def handle_request_payment(orderId: IdentifierPath, idempotency_key: IdempotencyKeyHeader = None) -> OrderWithPayment:  # noqa: N803
    deps = dependencies()
    placed = ordering.request_payment(
        orderId,
        current_caller(app),
        idempotency_key=idempotency_key,
        orders=deps.orders,
        payments=deps.payments,
        clock=deps.clock,
    )
    metrics.add_metric(name="PaymentIntentsCreated", unit=MetricUnit.Count, value=1)
    return OrderWithPayment(order=placed.order, payment=placed.payment)


@app.post("/orders/<orderId>/confirm", responses=api_responses(S.OK, S.NOT_FOUND, S.CONFLICT))
def handle_confirm_order(orderId: IdentifierPath) -> Order:  # noqa: N803
    deps = dependencies()
    order = payment_outcomes.confirm_order(
        orderId,
        current_caller(app),
        orders=deps.orders,
        payments=deps.payments,
        clock=deps.clock,
        refunds=refund_ports(),
    )
    metrics.add_metric(name="OrdersConfirmed", unit=MetricUnit.Count, value=1)
    return order


@app.get("/subscriptions/<offerId>", responses=api_responses(S.OK))
def handle_get_subscription(offerId: IdentifierPath) -> SubscriptionResponse:  # noqa: N803
    deps = dependencies()
    found = order_reads.get_subscription(offerId, current_caller(app), orders=deps.orders, clock=deps.clock)
    return SubscriptionResponse(subscribed=found.subscribed, order_id=found.order_id, expires=found.expires)


@app.get("/admin/offers", responses=api_responses(S.OK, S.FORBIDDEN))
def handle_list_all_offers() -> AllOffersResponse:
    require_admin(app)
    return AllOffersResponse(offers=offers.list_all_offers(catalog=dependencies().catalog))


@app.put(
    "/admin/offers/<offerId>",
    responses=api_responses(S.OK, S.FORBIDDEN),
)
def handle_put_offer(offerId: IdentifierPath, body: Annotated[PutOfferRequest, Body()]) -> Offer:  # noqa: N803
    require_admin(app)
    if body.offer_id is not None and body.offer_id != offerId:
        raise InvalidRequestError(f"body offerId {body.offer_id!r} differs from the path's {offerId!r}")
    deps = dependencies()
    offer = Offer(**{**body.model_dump(exclude={"offer_id"}), "offer_id": offerId})
    saved = offers.upsert_offer(offer, catalog=deps.catalog, clock=deps.clock)
    metrics.add_metric(name="OffersUpserted", unit=MetricUnit.Count, value=1)
    return saved


@app.put("/admin/groups/<offerGroup>", responses=api_responses(S.OK, S.FORBIDDEN))
def handle_put_group_policy(offerGroup: IdentifierPath, body: Annotated[PutGroupPolicyRequest, Body()]) -> GroupPolicy:  # noqa: N803
    require_admin(app)
    if body.offer_group is not None and body.offer_group != offerGroup:
        raise InvalidRequestError(f"body offerGroup {body.offer_group!r} differs from the path's {offerGroup!r}")
    policy = GroupPolicy(**{**body.model_dump(exclude={"offer_group"}), "offer_group": offerGroup})
    dependencies().catalog.put_group_policy(policy)
    metrics.add_metric(name="GroupPoliciesSet", unit=MetricUnit.Count, value=1)
    return policy


@app.delete(
    "/admin/offers/<offerId>",
    responses=api_responses(S.NO_CONTENT, S.FORBIDDEN, S.NOT_FOUND),
)
def handle_retire_offer(offerId: IdentifierPath) -> Response[None]:  # noqa: N803
    require_admin(app)
    deps = dependencies()
    offers.retire_offer(offerId, catalog=deps.catalog, clock=deps.clock)
    metrics.add_metric(name="OffersRetired", unit=MetricUnit.Count, value=1)
    return Response(status_code=S.NO_CONTENT, body=None)


# SnapStart: built before the snapshot, not on a restored environment's first request (usercredits.snapstart).
prime_before_snapshot(dependencies, tables=[CreditsItem], modules=["stripe"], openapi=app.get_openapi_schema)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """HTTP API (payload 2.0) entry point; answers every request with the contract's JSON (errors included)."""
    return resolve(app, event, context)


__all__ = ["OfferView", "app", "lambda_handler"]
