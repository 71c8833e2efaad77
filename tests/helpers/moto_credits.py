"""The credits use cases on moto through the real adapters, for integration tests of expiry, pages and holds."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3

from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.integration.conftest import outbox_events
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.expiry import DynamoExpiryIndex
from usercredits.domain import balances, spending
from usercredits.domain.expiry_scan import ScanReport, Unlimited, scan_expiry

DAY = 86400
WEEK = 7 * DAY


@dataclass
class MotoWorld:
    """The credits ports on moto (the real adapters), a clock the test moves and a recording bus, with the
    scan and the consumption use cases at hand."""

    catalog: DynamoCatalogRepository = field(default_factory=lambda: DynamoCatalogRepository(cache_seconds=0))
    credits: DynamoCreditsRepository = field(default_factory=DynamoCreditsRepository)
    clock: FixedClock = field(default_factory=FixedClock)
    index: DynamoExpiryIndex = field(default_factory=DynamoExpiryIndex)
    events: Any = field(default_factory=RecordingEventPublisher)

    def scan(self, *, windows: tuple[int, ...] = (WEEK, DAY), budget: Any = None, page_size: int = 100) -> ScanReport:
        return scan_expiry(
            run_id=str(uuid.uuid4()),
            lease=timedelta(minutes=2),
            windows=windows,
            budget=budget or Unlimited(),
            index=self.index,
            credits=self.credits,
            catalog=self.catalog,
            events=self.events,
            clock=self.clock,
            page_size=page_size,
        )

    def grant(self, user: str, group: str, tokens: int, expires_in: timedelta | None) -> str:
        expires = self.clock.now() + expires_in if expires_in else None
        entry = spending.grant_credits(
            user, group, tokens, expires=expires, reason="t", credits=self.credits, clock=self.clock
        )
        assert entry.lot_id is not None
        return entry.lot_id

    def consume(self, user: str, group: str, count: int, events: Any = None) -> None:
        spending.consume_credits(
            user,
            group,
            count,
            idempotency_key=None,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
            events=events,
        )

    def balance(self, user: str, group: str) -> int:
        state = self.credits.group_state(user, group)
        return state.balance if state else 0

    def ledger(self, user: str) -> list[Any]:
        return balances.list_ledger(user, offer_group=None, limit=200, cursor=None, credits=self.credits).items


def items() -> list[dict[str, Any]]:
    """Every item of the credits table."""
    client = boto3.client("dynamodb")
    pages = client.get_paginator("scan").paginate(TableName=os.environ["CREDITS_TABLE_NAME"])
    return [item for page in pages for item in page["Items"]]


def expired_in_outbox() -> list[dict[str, Any]]:
    """The details of the ``CreditsExpired`` events written to the outbox, in commit order."""
    return [detail for kind, detail in outbox_events(items()) if kind == "CreditsExpired"]
