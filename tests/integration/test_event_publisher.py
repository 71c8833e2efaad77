"""The EventBridge adapter: entries reach the bus (moto, read back through an SQS target) and partial failures
are retried."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3
import pytest
from moto import mock_aws

from usercredits.adapters.events import EventBridgePublisher
from usercredits.errors import UnavailableError
from usercredits.kernel.models import DomainEvent


def test_events_reach_the_bus_with_source_and_detail() -> None:
    with mock_aws():
        bus = os.environ["EVENT_BUS_NAME"]
        events, sqs = boto3.client("events"), boto3.client("sqs")
        events.create_event_bus(Name=bus)
        queue = sqs.create_queue(QueueName="sink")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="all", EventBusName=bus, EventPattern=json.dumps({"source": ["user-credits"]}))
        events.put_targets(Rule="all", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])

        EventBridgePublisher(bus).publish([DomainEvent("CreditsLow", {"userId": "u", "balance": 3})] * 12)

        received = []
        while batch := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
            received += batch
            for message in batch:
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        bodies = [json.loads(message["Body"]) for message in received]
        assert len(bodies) == 12  # two PutEvents calls (10 + 2)
        assert {(b["source"], b["detail-type"], b["detail"]["balance"]) for b in bodies} == {
            ("user-credits", "CreditsLow", 3)
        }


class FlakyClient:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: list[int] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto's name
        self.calls.append(len(Entries))
        if self.failures:
            self.failures -= 1
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "ThrottlingException"}] + [{}] * (len(Entries) - 1),
            }
        return {"FailedEntryCount": 0, "Entries": [{}] * len(Entries)}


def test_partial_failures_resend_only_the_failed_entries() -> None:
    publisher = EventBridgePublisher("bus")
    publisher._client = client = FlakyClient(failures=2)
    publisher.publish([DomainEvent("A", {}), DomainEvent("B", {}), DomainEvent("C", {})])
    assert client.calls == [3, 1, 1]


def test_a_bus_that_keeps_failing_raises_unavailable() -> None:
    publisher = EventBridgePublisher("bus")
    publisher._client = FlakyClient(failures=5)
    with pytest.raises(UnavailableError):
        publisher.publish([DomainEvent("A", {})])
