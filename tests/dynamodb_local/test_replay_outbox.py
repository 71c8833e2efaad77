"""On the real engine: `python -m devtools.replay_outbox` publishes again what the stream gave up on, once per event id.

The failure objects are built as Lambda writes them to the S3 on-failure destination (its invocation record with
the batch of stream records), from the real stream of real outbox writes.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from devtools.lambda_context import LambdaContext
from devtools.replay_outbox import ReplayMarkers, main, outbox_images, replay, stream_records

from tests.helpers.streams import RecordingPublisher, failure_object, mine
from tests.helpers.streams import stream_records as read_stream
from usercredits.adapters.dynamodb.keys import user_pk
from usercredits.adapters.dynamodb.transactions import IdempotentTransaction, add_outbox
from usercredits.kernel.models import DomainEvent

pytestmark = pytest.mark.dynamodb_local


def ids(events: list[DomainEvent]) -> list[str]:
    return [str(event.detail["eventId"]) for event in events]


def committed_facts(user_id: str, facts: int = 3) -> None:
    """``facts`` transactions, each with its outbox item of two events, and an item that is not an outbox one."""
    for fact in range(facts):
        with IdempotentTransaction(user_id, None) as transaction:
            events = [
                DomainEvent("CreditsGranted", {"userId": user_id, "fact": fact, "tokens": 10}),
                DomainEvent("OrderPaid", {"userId": user_id, "fact": fact}),
            ]
            add_outbox(transaction, user_id, events, datetime.now(UTC))
    boto3.client("dynamodb").put_item(
        TableName=os.environ["CREDITS_TABLE_NAME"],
        Item={"pk": {"S": user_pk(user_id)}, "sk": {"S": "LIMIT#x"}, "itemType": {"S": "limit"}},
    )


@pytest.fixture
def failed_batch(dynamodb_local: str, user_id: str, tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """A failure object saved as a file, and the stream records it holds."""
    committed_facts(user_id)
    records = mine(read_stream(dynamodb_local), user_id)
    path = tmp_path / "failed-batch.json"
    path.write_text(json.dumps(failure_object(records)), encoding="utf-8")
    return path, records


def test_replay_publishes_what_the_publisher_would_have_with_the_same_event_ids(
    failed_batch: tuple[Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from event_publisher import handler

    path, records = failed_batch
    # Given what the event publisher puts on the bus for these records when the bus works
    expected = RecordingPublisher()
    monkeypatch.setattr(handler, "publisher", lambda: expected)
    handler.lambda_handler({"Records": records}, LambdaContext("EventPublisherFunction", 256, 60))
    assert len(expected.published) == 6
    # When the batch it gave up on is replayed from its failure object
    replayed = RecordingPublisher()
    assert main(["--file", str(path)], publisher=replayed) == 0
    # Then the same events are published, in the same order, with the same ids (consumers' deduplication holds)
    assert [(e.kind, e.detail) for e in replayed.published] == [(e.kind, e.detail) for e in expected.published]


def test_a_second_replay_publishes_nothing(failed_batch: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = failed_batch
    first, second = RecordingPublisher(), RecordingPublisher()
    assert main(["--file", str(path)], publisher=first) == 0
    assert main(["--file", str(path)], publisher=second) == 0
    assert len(first.published) == 6
    assert second.published == []


def test_the_payload_may_be_an_object_and_other_records_are_skipped(
    dynamodb_local: str, failed_batch: tuple[Path, list[dict[str, Any]]]
) -> None:
    _, records = failed_batch
    # Given the same batch with its payload as an object, holding a record that is not an outbox insert
    assert len(records) == 4
    images = outbox_images(stream_records(failure_object(records, payload_as_text=False)))
    # Then only the three outbox items are replayed
    publisher = RecordingPublisher()
    report = replay(images, ReplayMarkers(os.environ["CREDITS_TABLE_NAME"]), publisher)
    assert len(report.published) == 3 and len(publisher.published) == 6


def test_concurrent_replays_publish_each_event_once(failed_batch: tuple[Path, list[dict[str, Any]]]) -> None:
    # Given eight operators replaying the same batch at once
    _, records = failed_batch
    images = outbox_images(records)
    publishers = [RecordingPublisher() for _ in range(8)]

    def run(publisher: RecordingPublisher) -> None:
        replay(images, ReplayMarkers(os.environ["CREDITS_TABLE_NAME"]), publisher)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(run, publishers))
    # Then every event reached the bus exactly once (the markers' conditional puts are atomic on the real engine)
    published = [event_id for publisher in publishers for event_id in ids(publisher.published)]
    assert len(published) == 6 and len(set(published)) == 6


def test_a_failed_publication_is_tried_again_by_the_next_run(failed_batch: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = failed_batch
    # Given a run whose bus fails on the second outbox item
    failing = RecordingPublisher(fail_on_call=2)
    assert main(["--file", str(path)], publisher=failing) == 1
    assert len(failing.published) == 4
    # When the replay runs again
    retry = RecordingPublisher()
    assert main(["--file", str(path)], publisher=retry) == 0
    # Then only the item that failed is published, and every event has been published once in all
    assert len(retry.published) == 2
    assert sorted(ids(failing.published) + ids(retry.published)) == sorted(
        set(ids(failing.published) + ids(retry.published))
    )


def test_a_claim_left_by_a_dead_run_is_in_doubt_until_retried(failed_batch: tuple[Path, list[dict[str, Any]]]) -> None:
    path, records = failed_batch
    # Given a run that claimed the first outbox item and died before marking it published
    first = outbox_images(records)[0]
    markers = ReplayMarkers(os.environ["CREDITS_TABLE_NAME"])
    assert markers.claim(f"{first['pk']}|{first['sk']}") is None
    # When the replay runs
    publisher = RecordingPublisher()
    # Then that item is reported in doubt and left alone, the others are published
    assert main(["--file", str(path)], publisher=publisher) == 1
    assert len(publisher.published) == 4
    # and --retry-claimed publishes it (at least once: consumers drop a duplicate by eventId)
    retried = RecordingPublisher()
    assert main(["--file", str(path), "--retry-claimed"], publisher=retried) == 0
    assert {e.detail["eventId"] for e in retried.published} == {f"{first['sk']}#0", f"{first['sk']}#1"}


def test_dry_run_writes_nothing(failed_batch: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = failed_batch
    assert main(["--file", str(path), "--dry-run"], publisher=RecordingPublisher()) == 0
    publisher = RecordingPublisher()
    assert main(["--file", str(path)], publisher=publisher) == 0
    assert len(publisher.published) == 6
