"""Plays the DynamoDB stream -> Lambda event source mapping for ``make run``: new outbox items of a table (DynamoDB
Local keeps a real stream) are handed to the event publisher function, like the template's ``Outbox`` (credits
table) and ``CustomersOutbox`` (customers table) events with their filter, and the records it reports as failed are
handed to it again on the next poll, in order. The dev server runs one pump per table."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import boto3

#: The template's filter: only new outbox items invoke the function.
OUTBOX_PREFIX = "OUTBOX#"


def wanted(record: dict[str, Any]) -> bool:
    """The event source mapping's filter (template.yaml, EventPublisherFunction ``Outbox``)."""
    keys = (record.get("dynamodb") or {}).get("Keys") or {}
    return record.get("eventName") == "INSERT" and str((keys.get("sk") or {}).get("S", "")).startswith(OUTBOX_PREFIX)


class StreamPump:
    """Polls every shard of the table's stream from its latest position and invokes ``deliver`` with batches.
    ``table``: the table's name (the credits table, ``CREDITS_TABLE_NAME``, when not given)."""

    def __init__(
        self,
        endpoint: str,
        deliver: Callable[[dict[str, Any]], dict[str, Any]],
        interval: float = 0.5,
        table: str | None = None,
    ) -> None:
        self._deliver = deliver
        self._interval = interval
        self._stop = threading.Event()
        table = table or os.environ["CREDITS_TABLE_NAME"]
        self._arn = boto3.client("dynamodb", endpoint_url=endpoint).describe_table(TableName=table)["Table"][
            "LatestStreamArn"
        ]
        self._streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
        self._iterators: dict[str, str] = {}
        self._read: dict[str, int] = {}  # per shard, the sequence number of the last record read
        self._pending: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, name=f"stream-pump-{table}", daemon=True)

    def start(self) -> StreamPump:
        self._discover("LATEST")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _discover(self, position: str) -> None:
        for shard in self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._streams.get_shard_iterator(
                    StreamArn=self._arn, ShardId=shard["ShardId"], ShardIteratorType=position
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Read new records, deliver the wanted ones (after any still pending); the number delivered successfully."""
        self._discover("TRIM_HORIZON")  # a shard that appeared after start is read from its beginning
        for shard_id, iterator in list(self._iterators.items()):
            if not iterator:
                continue
            answer = self._get_records(shard_id, iterator)
            self._iterators[shard_id] = answer.get("NextShardIterator") or ""
            records = [
                r for r in answer["Records"] if int(r["dynamodb"]["SequenceNumber"]) > self._read.get(shard_id, -1)
            ]
            if records:
                self._read[shard_id] = int(records[-1]["dynamodb"]["SequenceNumber"])
            self._pending += [record | {"eventSourceARN": self._arn} for record in records if wanted(record)]
        if not self._pending:
            return 0
        batch, self._pending = self._pending, []
        failures = self._deliver({"Records": batch}).get("batchItemFailures") or []
        if failures:  # retry from the first failed record, in order (what Lambda does with ReportBatchItemFailures)
            first = {failure["itemIdentifier"] for failure in failures}
            index = next(i for i, r in enumerate(batch) if r["dynamodb"]["SequenceNumber"] in first)
            self._pending = batch[index:]
            return index
        return len(batch)

    def _get_records(self, shard_id: str, iterator: str) -> dict[str, Any]:
        """One read of the shard. DynamoDB Local answers TrimmedDataAccessException to an iterator taken while its
        shard was empty once other tables have written in the meantime (sequence numbers are shared by every table;
        nothing was trimmed): the shard is read again from its oldest record, and records already read are skipped
        (``_read``), so nothing is delivered twice or lost."""
        try:
            return dict(self._streams.get_records(ShardIterator=iterator, Limit=1000))
        except self._streams.exceptions.TrimmedDataAccessException:
            iterator = self._streams.get_shard_iterator(
                StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            return dict(self._streams.get_records(ShardIterator=iterator, Limit=1000))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - keep pumping; the dev server log says why
                print(f"[devserver] stream pump: {type(exc).__name__}: {exc}", flush=True)
