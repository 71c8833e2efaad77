"""The credits table's stream on DynamoDB Local, read as Lambda's event source mapping would hand it over."""

from __future__ import annotations

import os
from typing import Any

import boto3


def stream_records(endpoint: str) -> list[dict[str, Any]]:
    """Every record of the credits table's stream so far, in Lambda's event shape."""
    table = os.environ["CREDITS_TABLE_NAME"]
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
