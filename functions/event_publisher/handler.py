"""Event publisher function (both tables' DynamoDB streams): puts the outbox's events on the EventBridge bus.

A fact and its events are written in one transaction (an ``OUTBOX#`` item: the credits half's through
``usercredits.adapters.dynamodb.transactions.add_outbox``, the subscriptions half's through
``customer_transactions.add_fact``, one item per fact, in the same shape); each table's stream delivers each new item
here once, in order per item. Records are published in order; at the first one that cannot be published the rest of
the batch is reported as failed (``batchItemFailures``), so Lambda retries from there and nothing is lost or sent out
of order. The event source mappings' filter only lets outbox inserts through.

Not Powertools' BatchProcessor: it processes every record even after a failure, and a stream retry then re-sends the
ones after it; stopping at the first failure keeps duplicates to the failed record alone.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBStreamEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.adapters.dynamodb.outbox import is_outbox_item, outbox_events
from usercredits.adapters.events import EventBridgePublisher
from usercredits.observability import logger, metrics
from usercredits.settings import get_event_publisher_settings


@lru_cache
def publisher() -> EventBridgePublisher:
    """Composition root (built on first use)."""
    return EventBridgePublisher(get_event_publisher_settings().EVENT_BUS_NAME)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """DynamoDB stream entry point; returns the records to retry (the first failed one and every one after it)."""
    failures: list[dict[str, str]] = []
    published = 0
    for record in DynamoDBStreamEvent(event).records:
        stream = record.dynamodb
        if failures:
            failures.append({"itemIdentifier": str(stream.sequence_number if stream else "")})
            continue
        image = stream.new_image if stream else {}
        if not is_outbox_item(image):
            continue  # the filter keeps these out in AWS; harmless if one slips through
        events = outbox_events(image)
        try:
            publisher().publish(events)
        except Exception:  # noqa: BLE001 - any failure: retry this record and the rest, in order
            logger.exception("could not publish the events of %s; the stream will retry", image.get("sk"))
            failures.append({"itemIdentifier": str(stream.sequence_number if stream else "")})
            continue
        published += len(events)
        logger.info("published", extra={"outbox": image.get("sk"), "kinds": [e.kind for e in events]})
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=published)
    if failures:
        metrics.add_metric(name="OutboxRecordsRetried", unit=MetricUnit.Count, value=len(failures))
    return {"batchItemFailures": failures}
