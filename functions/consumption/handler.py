"""Consumption function: credit balances, spending, the ledger and grants.

Routes: docs/api.md#credits-consumptionfunction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime

from consumption.schemas import (
    CaptureRequest,
    ConsumeRequest,
    ConsumeResponse,
    CreditsResponse,
    ExpiryCheckRequest,
    ExpiryCheckResponse,
    GrantRequest,
    GroupUsage,
    LedgerResponse,
    ReservationRequest,
    UsageResponse,
)
from usercredits.adapters.clock import build_clock
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.credits_table import CreditsItem
from usercredits.adapters.events import EventBridgePublisher
from usercredits.domain import balances, expiry_check, reservations, spending
from usercredits.domain.credits import CreditGroup
from usercredits.domain.models import LedgerEntry, Reservation
from usercredits.domain.ports import CatalogRepository, CreditsRepository, EventPublisher
from usercredits.errors import InvalidRequestError
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
from usercredits.kernel.clock import Clock
from usercredits.observability import logger, metrics
from usercredits.settings import get_consumption_settings
from usercredits.snapstart import prime_before_snapshot

app = HttpApiResolver()
register_error_handlers(app)

S = HTTPStatus
ReservationPath = Annotated[str, Path(min_length=26, max_length=26, pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]


@dataclass(frozen=True)
class Dependencies:
    catalog: CatalogRepository
    credits: CreditsRepository
    events: EventPublisher
    clock: Clock


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built on first use (none at import time)."""
    settings = get_consumption_settings()
    return Dependencies(
        catalog=DynamoCatalogRepository(cache_seconds=settings.CATALOG_CACHE_SECONDS),
        credits=DynamoCreditsRepository(),
        events=EventBridgePublisher(settings.EVENT_BUS_NAME),
        clock=build_clock(settings),
    )


@app.get("/credits", responses=api_responses(S.OK))
def handle_list_credits() -> CreditsResponse:
    deps = dependencies()
    return CreditsResponse(
        groups=balances.list_credits(
            current_caller(app).user_id, credits=deps.credits, clock=deps.clock, catalog=deps.catalog
        )
    )


@app.get("/credits/ledger", responses=api_responses(S.OK))
def handle_get_ledger(
    offer_group: Annotated[str | None, Query(alias="offerGroup", max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
) -> LedgerResponse:
    page = balances.list_ledger(
        current_caller(app).user_id, offer_group=offer_group, limit=limit, cursor=cursor, credits=dependencies().credits
    )
    return LedgerResponse(entries=page.items, next_cursor=page.next_cursor)


@app.get("/credits/usage", responses=api_responses(S.OK))
def handle_get_usage(
    start: Annotated[AwareDatetime, Query(alias="from")],
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
    spent_only: Annotated[bool, Query(alias="spentOnly")] = True,
) -> UsageResponse:
    deps = dependencies()
    totals = balances.usage_totals(
        current_caller(app).user_id,
        start=start,
        end=end or deps.clock.now(),
        spent_only=spent_only,
        credits=deps.credits,
    )
    return UsageResponse(groups=[GroupUsage(offer_group=g, tokens=t) for g, t in sorted(totals.items())])


@app.get("/credits/<offerGroup>", responses=api_responses(S.OK))
def handle_get_credit_group(
    offerGroup: IdentifierPath,  # noqa: N803 - the contract's path parameter
    lots_cursor: Annotated[str | None, Query(alias="lotsCursor", min_length=1, max_length=2048)] = None,
) -> CreditGroup:
    deps = dependencies()
    return balances.get_credit_group(
        current_caller(app).user_id,
        offerGroup,
        credits=deps.credits,
        clock=deps.clock,
        catalog=deps.catalog,
        lots_after=lots_cursor,
    )


def _consume(user_id: str, offer_group: str, body: ConsumeRequest, header_key: str | None) -> ConsumeResponse:
    if body.idempotency_key and header_key and body.idempotency_key != header_key:
        raise InvalidRequestError("idempotencyKey in the body and the Idempotency-Key header differ")
    deps = dependencies()
    result = spending.consume_credits(
        user_id,
        offer_group,
        body.count,
        idempotency_key=body.idempotency_key or header_key,
        catalog=deps.catalog,
        credits=deps.credits,
        clock=deps.clock,
        events=deps.events,
    )
    metrics.add_metric(name="CreditsConsumed", unit=MetricUnit.Count, value=result.consumed)
    return ConsumeResponse(
        offer_group=result.offer_group, consumed=result.consumed, balance=result.balance, entry_id=result.entry_id
    )


@app.post("/credits/<offerGroup>/consume", responses=api_responses(S.OK, S.PAYMENT_REQUIRED, S.CONFLICT))
def handle_consume(
    offerGroup: IdentifierPath,  # noqa: N803
    body: Annotated[ConsumeRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> ConsumeResponse:
    return _consume(current_caller(app).user_id, offerGroup, body, idempotency_key)


@app.get("/admin/users/<userId>/credits", responses=api_responses(S.OK, S.FORBIDDEN))
def handle_admin_get_credits(userId: UserPath) -> CreditsResponse:  # noqa: N803
    require_admin(app)
    deps = dependencies()
    return CreditsResponse(
        groups=balances.list_credits(userId, credits=deps.credits, clock=deps.clock, catalog=deps.catalog)
    )


@app.post(
    "/admin/users/<userId>/credits/<offerGroup>/consume",
    responses=api_responses(S.OK, S.FORBIDDEN, S.PAYMENT_REQUIRED, S.CONFLICT),
)
def handle_admin_consume(
    userId: UserPath,  # noqa: N803
    offerGroup: IdentifierPath,  # noqa: N803
    body: Annotated[ConsumeRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> ConsumeResponse:
    require_admin(app)
    return _consume(userId, offerGroup, body, idempotency_key)


@app.post(
    "/admin/users/<userId>/grants", status_code=S.CREATED, responses=api_responses(S.CREATED, S.FORBIDDEN, S.CONFLICT)
)
def handle_admin_grant(
    userId: UserPath,  # noqa: N803
    body: Annotated[GrantRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> LedgerEntry:
    require_admin(app)
    deps = dependencies()
    entry = spending.grant_credits(
        userId,
        body.offer_group,
        body.tokens,
        expires=body.expires,
        reason=body.reason,
        idempotency_key=idempotency_key,
        credits=deps.credits,
        clock=deps.clock,
    )
    metrics.add_metric(name="CreditsGranted", unit=MetricUnit.Count, value=body.tokens)
    return entry


@app.post(
    "/credits/<offerGroup>/reservations",
    status_code=S.CREATED,
    responses=api_responses(S.CREATED, S.PAYMENT_REQUIRED, S.CONFLICT),
)
def handle_create_reservation(
    offerGroup: IdentifierPath,  # noqa: N803
    body: Annotated[ReservationRequest, Body()],
    idempotency_key: IdempotencyKeyHeader = None,
) -> Reservation:
    deps = dependencies()
    reservation = reservations.create_reservation(
        current_caller(app).user_id,
        offerGroup,
        body.count,
        expires_in_seconds=body.expires_in_seconds,
        idempotency_key=idempotency_key,
        catalog=deps.catalog,
        credits=deps.credits,
        clock=deps.clock,
    )
    metrics.add_metric(name="CreditsHeld", unit=MetricUnit.Count, value=body.count)
    return reservation


@app.post("/reservations/<reservationId>/capture", responses=api_responses(S.OK, S.NOT_FOUND, S.CONFLICT))
def handle_capture_reservation(
    reservationId: ReservationPath,  # noqa: N803
    body: Annotated[CaptureRequest | None, Body()] = None,
) -> Reservation:
    deps = dependencies()
    count = body.count if body else None
    reservation = reservations.capture_reservation(
        current_caller(app).user_id,
        reservationId,
        count,
        credits=deps.credits,
        clock=deps.clock,
        catalog=deps.catalog,
        events=deps.events,
    )
    metrics.add_metric(name="CreditsCaptured", unit=MetricUnit.Count, value=reservation.captured)
    return reservation


@app.post("/reservations/<reservationId>/release", responses=api_responses(S.OK, S.NOT_FOUND, S.CONFLICT))
def handle_release_reservation(reservationId: ReservationPath) -> Reservation:  # noqa: N803
    deps = dependencies()
    return reservations.release_reservation(
        current_caller(app).user_id, reservationId, credits=deps.credits, clock=deps.clock
    )


@app.post("/credits/expiry-check", responses=api_responses(S.OK))
def handle_expiry_check(body: Annotated[ExpiryCheckRequest | None, Body()] = None) -> ExpiryCheckResponse:
    request = body or ExpiryCheckRequest()
    deps = dependencies()
    report = expiry_check.check_expiry(
        current_caller(app).user_id,
        warn_before_seconds=request.warn_before_seconds,
        low={threshold.offer_group: threshold.min for threshold in request.low},
        credits=deps.credits,
        clock=deps.clock,
        catalog=deps.catalog,
    )
    metrics.add_metric(name="ExpiryChecks", unit=MetricUnit.Count, value=1)
    return ExpiryCheckResponse(expired=report.expired, warnings=report.warnings)


# SnapStart: built before the snapshot, not on a restored environment's first request (usercredits.snapstart).
prime_before_snapshot(dependencies, tables=[CreditsItem], openapi=app.get_openapi_schema)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """HTTP API (payload 2.0) entry point; answers every request with the contract's JSON (errors included)."""
    return resolve(app, event, context)
