"""On the real engine: the subscriptions half's events are written in the save's own transaction (a save that fails
writes none; a fact recorded already is not written again), reach the event publisher through the customers table's
stream (as the dev server's pump plays it), and a failed batch of them replays once like the credits table's."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import boto3
import pytest
from devtools.lambda_context import LambdaContext
from devtools.replay_outbox import main

from tests.helpers.streams import RecordingPublisher, failure_object, stream_records
from tests.helpers.subscription_builders import at, base_customer, subscription
from usercredits.adapters.dynamodb.customers import DynamoCustomerRepository
from usercredits.adapters.dynamodb.keys import customer_outbox_pk
from usercredits.subscriptions.changes import customer_changes
from usercredits.subscriptions.models import Customer, SubscriptionStatus, SubscriptionStatusEvent
from usercredits.subscriptions.ports import StaleCustomerError

pytestmark = pytest.mark.dynamodb_local


def _customer(user_id: str, status: SubscriptionStatus = SubscriptionStatus.PENDING) -> Customer:
    sub = subscription("s1", status=status)
    if status is SubscriptionStatus.ACTIVE:
        history = [SubscriptionStatusEvent(status=status, timestamp=at("2017-03-02"))]
        sub = sub.model_copy(update={"status_history": history})
    return base_customer(user_id=user_id, subscriptions=[sub])


def _outbox(user_id: str) -> dict[str, dict[str, Any]]:
    items = boto3.client("dynamodb").query(
        TableName=os.environ["CUSTOMERS_TABLE_NAME"],
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": customer_outbox_pk(user_id)}},
        ConsistentRead=True,
    )["Items"]
    return {item["sk"]["S"]: item for item in items}


def _mine(records: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == customer_outbox_pk(user_id)]


def test_a_save_and_its_outbox_items_commit_together_or_not_at_all(dynamodb_local: str, user_id: str) -> None:
    repository = DynamoCustomerRepository()
    # Given a customer saved with a pending subscription: its creation is in the outbox
    saved = repository.save(customer_changes(None, _customer(user_id)))
    assert set(_outbox(user_id)) == {"OUTBOX#SUB#s1#created"}
    # When an activation is saved over a version another save moved meanwhile
    activated = _customer(user_id, SubscriptionStatus.ACTIVE).model_copy(update={"version": saved.version})
    repository.save(customer_changes(saved, saved.model_copy(update={"name": "someone else"})))
    with pytest.raises(StaleCustomerError):
        repository.save(customer_changes(saved, activated))
    # Then neither the subscription's change nor its event was written
    loaded = repository.load(user_id)
    assert loaded is not None and loaded.subscriptions[0].status is SubscriptionStatus.PENDING
    assert set(_outbox(user_id)) == {"OUTBOX#SUB#s1#created"}
    # And the same change on the fresh customer writes both
    repository.save(
        customer_changes(loaded, activated.model_copy(update={"version": loaded.version, "name": loaded.name}))
    )
    assert set(_outbox(user_id)) == {"OUTBOX#SUB#s1#created", "OUTBOX#SUB#s1#activated#20170302T000000.000000Z"}


def test_a_fact_recorded_already_is_not_written_again_and_the_save_goes_through(
    dynamodb_local: str, user_id: str
) -> None:
    repository = DynamoCustomerRepository()
    saved = repository.save(customer_changes(None, _customer(user_id)))
    before = _outbox(user_id)["OUTBOX#SUB#s1#created"]
    # Given a save that derives a fact the outbox holds already (the subscription removed and made again)
    without = repository.save(customer_changes(saved, saved.model_copy(update={"subscriptions": []})))
    again = without.model_copy(update={"subscriptions": saved.subscriptions, "name": "renamed"})
    # When it is saved
    repository.save(customer_changes(without, again))
    # Then the customer is saved, and the fact's item is the first one, untouched (its stream sent it once)
    loaded = repository.load(user_id)
    assert loaded is not None and loaded.name == "renamed" and len(loaded.subscriptions) == 1
    assert _outbox(user_id)["OUTBOX#SUB#s1#created"] == before
    inserts = _mine(stream_records(dynamodb_local, os.environ["CUSTOMERS_TABLE_NAME"]), user_id)
    assert [r["eventName"] for r in inserts] == ["INSERT"]


def test_the_customers_stream_reaches_the_publisher_and_a_failed_batch_replays_once(
    dynamodb_local: str, user_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from devtools.stream_pump import StreamPump

    from event_publisher import handler

    # Given the dev server's pump on the customers table, delivering to the real publisher function
    published = RecordingPublisher()
    monkeypatch.setattr(handler, "publisher", lambda: published)
    batches: list[dict[str, Any]] = []

    def deliver(batch: dict[str, Any]) -> dict[str, Any]:
        batches.append(batch)
        return handler.lambda_handler(batch, LambdaContext("EventPublisherFunction", 256, 60))

    pump = StreamPump(dynamodb_local, deliver, table=os.environ["CUSTOMERS_TABLE_NAME"])
    pump._discover("LATEST")  # as start() does, without the background thread
    # When a customer is saved with an active subscription
    DynamoCustomerRepository().save(customer_changes(None, _customer(user_id, SubscriptionStatus.ACTIVE)))
    pump.poll_once()
    # Then its two events were published, with their fact ids as event ids (profile and children are filtered out)
    mine = [e for e in published.published if e.detail["userId"] == user_id]
    assert sorted(e.kind for e in mine) == ["SubscriptionActivated", "SubscriptionCreated"]
    assert {e.detail["eventId"] for e in mine} == {
        "OUTBOX#SUB#s1#created#0",
        "OUTBOX#SUB#s1#activated#20170302T000000.000000Z#0",
    }
    # And the same records, given up on and kept in the failure bucket, replay once (markers in the credits table)
    records = _mine(stream_records(dynamodb_local, os.environ["CUSTOMERS_TABLE_NAME"]), user_id)
    path = tmp_path / "failed-customers-batch.json"
    path.write_text(json.dumps(failure_object(records)), encoding="utf-8")
    first, second = RecordingPublisher(), RecordingPublisher()
    assert main(["--file", str(path)], publisher=first) == 0
    assert main(["--file", str(path)], publisher=second) == 0
    assert [(e.kind, e.detail) for e in first.published] == [(e.kind, e.detail) for e in mine]
    assert second.published == []


def test_the_pump_reads_a_table_whose_shard_was_empty_when_it_started(dynamodb_local: str, user_id: str) -> None:
    """DynamoDB Local refuses an iterator taken on an empty shard once other tables wrote meanwhile (the customers
    table under `make run`: empty at start, while the catalog fills the credits table); the pump reads on anyway."""
    from devtools.stream_pump import StreamPump

    client = boto3.client("dynamodb", endpoint_url=dynamodb_local)
    name = f"empty-at-start-{user_id}"
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    try:
        delivered: list[str] = []

        def deliver(batch: dict[str, Any]) -> dict[str, Any]:
            delivered.extend(r["dynamodb"]["Keys"]["sk"]["S"] for r in batch["Records"])
            return {"batchItemFailures": []}

        # Given a pump started on the table while it was empty, and another table written meanwhile
        pump = StreamPump(dynamodb_local, deliver, table=name)
        pump._discover("LATEST")
        assert pump.poll_once() == 0
        DynamoCustomerRepository().save(customer_changes(None, _customer(user_id)))
        # When an outbox item and another item are written to the table
        for sk in ("OUTBOX#a", "PROFILE"):
            client.put_item(TableName=name, Item={"pk": {"S": "p"}, "sk": {"S": sk}, "itemType": {"S": "outbox"}})
        # Then the outbox item is delivered, once
        assert pump.poll_once() == 1 and pump.poll_once() == 0
        assert delivered == ["OUTBOX#a"]
    finally:
        client.delete_table(TableName=name)
