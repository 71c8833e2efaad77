"""Expiry scan function (EventBridge Scheduler, every ``ExpiryScanRate``): expires due credit lots, releases lapsed
holds, warns before lots expire and sends the CreditsLow a spend could not (README "Behaviour (expiry scan)").

The domain and PynamoDB are imported by the first run, not at import time: a scheduled job has no caller waiting for
its cold start, and the import stays within its budget (``make bench``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.observability import logger, metrics
from usercredits.settings import get_expiry_scan_settings

if TYPE_CHECKING:
    from usercredits.domain.ports import BatchPublisher, CatalogRepository, CreditsRepository, ExpiryIndex
    from usercredits.kernel.clock import Clock

#: Stop taking work when less time than this is left: enough to finish a page and save the cursors.
RESERVE_MS = 15_000


@dataclass(frozen=True)
class Dependencies:
    index: ExpiryIndex
    credits: CreditsRepository
    catalog: CatalogRepository
    events: BatchPublisher
    clock: Clock
    windows: tuple[int, ...]


@lru_cache
def dependencies() -> Dependencies:
    """Composition root: real adapters built on first use (none at import time)."""
    from usercredits.adapters.clock import build_clock
    from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
    from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
    from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
    from usercredits.adapters.events import EventBridgePublisher

    settings = get_expiry_scan_settings()
    return Dependencies(
        index=DynamoExpiryIndex(),
        credits=DynamoCreditsRepository(),
        catalog=DynamoCatalogRepository(cache_seconds=settings.CATALOG_CACHE_SECONDS),
        events=EventBridgePublisher(settings.EVENT_BUS_NAME),
        clock=build_clock(settings),
        windows=settings.warning_windows,
    )


class RemainingTime:
    """The run's budget: exhausted when the Lambda has less than ``reserve_ms`` left."""

    def __init__(self, context: LambdaContext, reserve_ms: int = RESERVE_MS) -> None:
        self._context = context
        self._reserve_ms = reserve_ms

    def exhausted(self) -> bool:
        return self._context.get_remaining_time_in_millis() < self._reserve_ms


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled entry point; returns what the run did (``skipped`` when another run holds the scan's lease).

    Work left when time runs short is picked up by the next run. A storage failure raises (the run fails and
    alarms); the cursors are saved first, so the next run goes on from there.
    """
    from usercredits.domain.expiry_scan import scan_expiry

    deps = dependencies()
    report = scan_expiry(
        run_id=context.aws_request_id,
        lease=timedelta(milliseconds=context.get_remaining_time_in_millis()),
        windows=deps.windows,
        budget=RemainingTime(context),
        index=deps.index,
        credits=deps.credits,
        catalog=deps.catalog,
        events=deps.events,
        clock=deps.clock,
    )
    for name, value in report.metrics().items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    result = report.as_dict()
    logger.info("expiry scan finished", extra={"scheduledTime": event.get("time"), **result})
    return result
