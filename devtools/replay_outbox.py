"""Publish again the outbox events the stream gave up on (README "Operations").

The event publisher's stream mapping sends a batch it gave up on (a record still failing after bisecting, 20 attempts
or an hour) to the stack's ``OutboxFailureBucket``, whole: each object is Lambda's invocation record with the batch's
stream records and their new images. This command reads those objects (or files downloaded from there) and puts the
events of every outbox item in them on the bus, with the ids the stream would have given them (``<outbox sk>#<n>``).

Each outbox item is published once, however often the command runs and however many run at once: it first claims
the item with a conditional put of a marker in the credits table (``keys.outbox_replay_sk``), publishes, then marks
it published; a failed publication gives the claim back, so the next run tries again. A claim left by a run that died
between its put and its mark is reported as in doubt and left alone, unless ``--retry-claimed`` (consumers drop a
duplicate by ``eventId``). Records that are not outbox inserts are skipped, as the mapping's filter would.

    python -m devtools.replay_outbox --bucket <OutboxFailureBucketName output> [--prefix <key prefix>] [--dry-run]
    python -m devtools.replay_outbox --file failed-batch.json [--file ...]

Needs ``CREDITS_TABLE_NAME`` and ``EVENT_BUS_NAME`` (the stack's outputs), AWS credentials and a region.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import boto3
from boto3.dynamodb.types import TypeDeserializer

from usercredits.adapters.dynamodb.keys import OUTBOX_REPLAY_PK, outbox_replay_sk
from usercredits.adapters.dynamodb.outbox import is_outbox_item, outbox_events
from usercredits.kernel.models import DomainEvent

#: Markers outlive the failure bucket's objects (90 days), so an old batch replayed again stays a no-op.
MARKER_TTL = timedelta(days=120)
CLAIMED, PUBLISHED = "claimed", "published"


class Publisher(Protocol):
    def publish(self, events: list[DomainEvent]) -> None: ...


@dataclass
class ReplayReport:
    """Outbox item keys (``<pk>|<sk>``) by what this run did with them."""

    published: list[str] = field(default_factory=list)
    already_published: list[str] = field(default_factory=list)
    in_doubt: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- reading failed batches
def stream_records(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream records of one failure object: Lambda's invocation record (``payload``, a JSON string or object;
    ``requestPayload`` likewise) or the stream event itself (``Records``)."""
    for name in ("payload", "requestPayload"):
        payload = document.get(name)
        if payload is not None:
            return stream_records(json.loads(payload) if isinstance(payload, str) else payload)
    records: list[dict[str, Any]] = document.get("Records") or []
    return records


def outbox_images(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new images of the records the mapping's filter lets through (outbox inserts), in stream order."""
    deserializer = TypeDeserializer()
    images = []
    for record in records:
        raw = (record.get("dynamodb") or {}).get("NewImage") or {}
        image = {name: deserializer.deserialize(value) for name, value in raw.items()}
        if record.get("eventName") == "INSERT" and is_outbox_item(image):
            images.append(image)
    return images


def read_bucket(bucket: str, prefix: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """(``s3://`` name, parsed object) of every object under ``prefix``, oldest key first."""
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents") or []:
            body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
            yield f"s3://{bucket}/{entry['Key']}", json.loads(body)


# ------------------------------------------------------------------------------------------- once per outbox item
class ReplayMarkers:
    """The markers that make a replay publish each outbox item once (conditional writes on the credits table)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self._table = table_name
        self._client = client or boto3.client("dynamodb")

    def _key(self, marker: str) -> dict[str, Any]:
        return {"pk": {"S": OUTBOX_REPLAY_PK}, "sk": {"S": marker}}

    def claim(self, marker: str, *, retry_claimed: bool = False) -> str | None:
        """Claim the item: None when this run may publish it, else the state another run left (claimed/published);
        ``retry_claimed`` takes over a claim (never a published marker)."""
        now = datetime.now(UTC)
        item = self._key(marker) | {
            "itemType": {"S": "outboxReplay"},
            "state": {"S": CLAIMED},
            "claimedAt": {"S": now.isoformat()},
            "ttl": {"N": str(int((now + MARKER_TTL).timestamp()))},
        }
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        if retry_claimed:
            condition = {
                "ConditionExpression": "attribute_not_exists(pk) OR #state = :claimed",
                "ExpressionAttributeNames": {"#state": "state"},
                "ExpressionAttributeValues": {":claimed": {"S": CLAIMED}},
            }
        try:
            self._client.put_item(
                TableName=self._table, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **condition
            )
        except self._client.exceptions.ConditionalCheckFailedException as error:
            return str(error.response.get("Item", {}).get("state", {}).get("S", CLAIMED))
        return None

    def mark_published(self, marker: str) -> None:
        self._client.update_item(
            TableName=self._table,
            Key=self._key(marker),
            UpdateExpression="SET #state = :published, publishedAt = :now",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":published": {"S": PUBLISHED}, ":now": {"S": datetime.now(UTC).isoformat()}},
        )

    def release(self, marker: str) -> None:
        """Give a claim back after a failed publication (only a claim: never a published marker)."""
        self._client.delete_item(
            TableName=self._table,
            Key=self._key(marker),
            ConditionExpression="#state = :claimed",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":claimed": {"S": CLAIMED}},
        )


def replay(
    images: Iterable[dict[str, Any]],
    markers: ReplayMarkers,
    publisher: Publisher,
    *,
    retry_claimed: bool = False,
    dry_run: bool = False,
) -> ReplayReport:
    """Publish the events of each outbox item (a deserialised new image) not published by a replay before."""
    report = ReplayReport()
    for image in images:
        marker = outbox_replay_sk(str(image["pk"]), str(image["sk"]))
        if dry_run:
            report.published.append(marker)
            continue
        state = markers.claim(marker, retry_claimed=retry_claimed)
        if state is not None:
            (report.already_published if state == PUBLISHED else report.in_doubt).append(marker)
            continue
        try:
            publisher.publish(outbox_events(image))
        except Exception:  # noqa: BLE001 - any failure: give the claim back, report, go on with the next item
            markers.release(marker)
            report.failed.append(marker)
            continue
        markers.mark_published(marker)
        report.published.append(marker)
    return report


# ------------------------------------------------------------------------------------------------------------ CLI
def _documents(args: argparse.Namespace) -> Iterator[tuple[str, dict[str, Any]]]:
    for path in args.file or []:
        yield str(path), json.loads(Path(path).read_text(encoding="utf-8"))
    if args.bucket:
        yield from read_bucket(args.bucket, args.prefix)


def main(argv: list[str] | None = None, publisher: Publisher | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", help="the stack's OutboxFailureBucketName output")
    parser.add_argument("--prefix", default="", help="only the objects under this key prefix")
    parser.add_argument("--file", action="append", type=Path, help="a failure object saved as a file (repeatable)")
    parser.add_argument("--retry-claimed", action="store_true", help="publish items a dead run claimed (in doubt)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be published, write nothing")
    args = parser.parse_args(argv)
    if not args.bucket and not args.file:
        parser.error("give --bucket or --file")
    if publisher is None:
        from usercredits.adapters.events import EventBridgePublisher

        publisher = EventBridgePublisher(os.environ["EVENT_BUS_NAME"])
    markers = ReplayMarkers(os.environ["CREDITS_TABLE_NAME"])
    started = time.monotonic()
    total = ReplayReport()
    for name, document in _documents(args):
        report = replay(
            outbox_images(stream_records(document)),
            markers,
            publisher,
            retry_claimed=args.retry_claimed,
            dry_run=args.dry_run,
        )
        print(
            f"{name}: {len(report.published)} published, {len(report.already_published)} already, "
            f"{len(report.in_doubt)} in doubt, {len(report.failed)} failed"
        )
        for kind in ("published", "already_published", "in_doubt", "failed"):
            getattr(total, kind).extend(getattr(report, kind))
    print(
        f"total: {len(total.published)} {'to publish' if args.dry_run else 'published'}, "
        f"{len(total.already_published)} already, {len(total.in_doubt)} in doubt {total.in_doubt}, "
        f"{len(total.failed)} failed {total.failed} ({time.monotonic() - started:.1f} s)"
    )
    return 1 if total.failed or total.in_doubt else 0


if __name__ == "__main__":
    sys.exit(main())
