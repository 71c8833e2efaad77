"""A table's stream on DynamoDB Local (the credits table's unless told), read as Lambda's event source mapping would
hand it over."""

from __future__ import annotations

import json
import os
from typing import Any

import boto3

from usercredits.kernel.models import DomainEvent


def stream_records(endpoint: str, table: str | None = None) -> list[dict[str, Any]]:
    """Every record of the table's stream so far (the credits table's by default), in Lambda's event shape."""
    table = table or os.environ["CREDITS_TABLE_NAME"]
    arn = boto3.client("dynamodb", endpoint_url=endpoint).describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += answer["Records"]
            if not answer["Records"]:
                break
            iterator = answer.get("NextShardIterator")
    return [record | {"eventSourceARN": arn} for record in records]


def mine(records: list[dict[str, Any]], user_id: str) -> list[dict[str, Any]]:
    return [r for r in records if r["dynamodb"]["Keys"]["pk"]["S"] == f"USER#{user_id}"]


class RecordingPublisher:
    def __init__(self, fail_on_call: int | None = None) -> None:
        self.published: list[DomainEvent] = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def publish(self, events: list[DomainEvent]) -> None:
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise RuntimeError("bus unavailable")
        self.published.extend(events)


def failure_object(records: list[dict[str, Any]], *, payload_as_text: bool = True) -> dict[str, Any]:
    """What Lambda writes to the S3 on-failure destination for a stream batch it gave up on."""
    payload: Any = {"Records": records}
    return {
        "requestContext": {
            "requestId": "c9b8fa9f-5a7f-4c3d-9e0a-1b2c3d4e5f60",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:stack-EventPublisherFunction",
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": 21,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "version": "1.0",
        "timestamp": "2026-12-06T10:00:00.000Z",
        "DDBStreamBatchInfo": {
            "shardId": "shardId-00000001",
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "batchSize": len(records),
            "streamArn": records[0]["eventSourceARN"],
        },
        "payload": json.dumps(payload, default=str)
        if payload_as_text
        else json.loads(json.dumps(payload, default=str)),
    }
