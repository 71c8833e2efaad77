"""An expiry of any size on the real engine: lots expiring at the same moment close in steps that each fit one
TransactWriteItems (100 actions), the group stays readable and exact, and nothing expires twice.

Before this, 130 lots of one group expiring together made one transaction past DynamoDB's limit: every read and spend
of the group answered 503 from then on and the scan failed at every run. moto does not refuse a transaction of more
than 100 actions (checked: it applies it), so the limit is shown here, on DynamoDB Local, which refuses it
(ValidationException), as DynamoDB does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.fakes.events import RecordingEventPublisher
from tests.helpers.ledger import assert_ledger_consistent
from tests.helpers.scan_setup import ScanSetup
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.dynamodb.credits_table import CreditsItem
from usercredits.domain import balances, reservations, spending
from usercredits.domain.lot_expiry import MAX_WRITES
from usercredits.domain.models import GroupPolicy, LedgerKind

pytestmark = pytest.mark.dynamodb_local

#: Admin grants have no order: closing one writes its lot only; the step also writes the group and the outbox item.
#: The group and the outbox item, then 2 writes per lot (its open item deleted, its closed copy put): 49.
LOTS_PER_STEP = (MAX_WRITES - 2) // 2


class CountingCredits(DynamoCreditsRepository):
    """The real repository, counting the closing transactions and the lots each closed."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int] = []

    def close_lots(self, user_id: str, state: Any, lots: Any, *args: Any, **kwargs: Any) -> None:
        super().close_lots(user_id, state, lots, *args, **kwargs)
        self.steps.append(len(lots))


def batch(setup: ScanSetup, user: str, group: str, lots: int, tokens: int = 2) -> None:
    """An admin's batch of promotional grants with one expiry (an hour from the clock)."""
    expires = setup.clock.now() + timedelta(hours=1)
    for _ in range(lots):
        spending.grant_credits(
            user, group, tokens, expires=expires, reason="promo", credits=setup.credits, clock=setup.clock
        )


def setup_at(year: int) -> tuple[ScanSetup, CountingCredits, str, str]:
    setup = ScanSetup(datetime(year, 3, 1, tzinfo=UTC))
    counting = CountingCredits()
    setup.credits = counting
    return setup, counting, setup.users[0], f"Promo-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize(("lots", "steps"), [(LOTS_PER_STEP, [LOTS_PER_STEP]), (LOTS_PER_STEP + 1, [LOTS_PER_STEP, 1])])
def test_lots_expiring_together_close_in_one_step_at_the_limit_and_two_just_past_it(
    dynamodb_local: str, lots: int, steps: list[int]
) -> None:
    setup, counting, user, group = setup_at(2031)
    batch(setup, user, group, lots)
    spending.consume_credits(
        user,
        group,
        3,
        idempotency_key=None,
        catalog=setup.catalog,
        credits=counting,
        clock=setup.clock,
        events=RecordingEventPublisher(),
    )
    setup.clock.advance(hours=2)
    (view,) = balances.list_credits(user, credits=counting, clock=setup.clock, catalog=setup.catalog)
    assert counting.steps == steps
    assert (view.balance, view.available, view.lots) == (0, 0, [])
    entries = assert_ledger_consistent(user, counting)[group]
    assert sum(-entry.tokens for entry in entries if entry.kind is LedgerKind.EXPIRE) == 2 * lots - 3


def test_130_lots_expiring_together_stay_readable_spendable_and_expire_once(dynamodb_local: str) -> None:
    # Given 130 lots of 2 expiring at the same moment, 1 lot of 5 that never expires, 3 tokens spent
    setup, counting, user, group = setup_at(2032)
    batch(setup, user, group, 130)
    spending.grant_credits(user, group, 5, expires=None, reason="base", credits=counting, clock=setup.clock)
    spending.consume_credits(
        user,
        group,
        3,
        idempotency_key=None,
        catalog=setup.catalog,
        credits=counting,
        clock=setup.clock,
        events=RecordingEventPublisher(),
    )
    # When the expiry passes and the user spends (the spend closes what is due first, in steps)
    setup.clock.advance(hours=2)
    spent = spending.consume_credits(
        user,
        group,
        1,
        idempotency_key=None,
        catalog=setup.catalog,
        credits=counting,
        clock=setup.clock,
        events=RecordingEventPublisher(),
    )
    # Then the spend is served by the lot that never expires, after 3 steps (49 + 49 + 32 lots)
    assert counting.steps == [49, 49, 32]
    assert spent.balance == 4
    view = balances.get_credit_group(user, group, credits=counting, clock=setup.clock, catalog=setup.catalog)
    assert (view.balance, [(lot.tokens, lot.remaining) for lot in view.lots]) == (4, [(5, 4)])
    # Every unused token expired once, with one CreditsExpired per lot that had tokens left
    entries = assert_ledger_consistent(user, counting)[group]
    assert sum(-entry.tokens for entry in entries if entry.kind is LedgerKind.EXPIRE) == 260 - 3
    expired_events = [detail for kind, detail in setup.outbox(user) if kind == "CreditsExpired"]
    assert len(expired_events) == 129  # the 3 spent used up the first lot (2) and 1 of the second: 129 had tokens
    assert len({detail["lotId"] for detail in expired_events}) == 129
    # And nothing is left for the scan
    assert setup.scan().lots_expired == 0


def test_the_scan_closes_a_large_batch_in_steps_and_a_second_run_finds_nothing(dynamodb_local: str) -> None:
    setup, counting, user, group = setup_at(2033)
    batch(setup, user, group, 250, tokens=1)
    setup.clock.advance(hours=2)
    report = setup.scan()
    assert (report.lots_expired, report.tokens_expired, report.backlog) == (250, 250, 0)
    assert counting.steps == [49] * 5 + [5]
    assert setup.scan().lots_expired == 0
    view = balances.get_credit_group(user, group, credits=counting, clock=setup.clock, catalog=setup.catalog)
    assert (view.balance, view.lots) == (0, [])


def test_an_expiry_whose_hold_cuts_do_not_fit_one_step_cuts_the_rest_before_anything_is_captured(
    dynamodb_local: str,
) -> None:
    # Given a group with no overdraft: one lot of 60 expiring and 60 holds of 1 (each cut to 0 writes 2 items)
    setup, counting, user, group = setup_at(2034)
    setup.catalog.put_group_policy(GroupPolicy(offer_group=group, overdraft="none"))
    batch(setup, user, group, 1, tokens=60)
    holds = [
        reservations.create_reservation(
            user,
            group,
            1,
            expires_in_seconds=86400,
            idempotency_key=None,
            catalog=setup.catalog,
            credits=counting,
            clock=setup.clock,
        )
        for _ in range(60)
    ]
    # When the lot expires and a hold is captured
    setup.clock.advance(hours=2)
    with pytest.raises(Exception) as refused:
        reservations.capture_reservation(
            user,
            holds[-1].reservation_id,
            None,
            catalog=setup.catalog,
            credits=counting,
            clock=setup.clock,
            events=RecordingEventPublisher(),
        )
    # Then the expiry ran first, in two steps (the lot and 48 cuts, then the 12 other cuts), and the capture found
    # its hold released
    assert counting.steps == [1, 0]
    assert "released" in str(refused.value) or "not held" in str(refused.value), refused.value
    view = balances.get_credit_group(user, group, credits=counting, clock=setup.clock, catalog=setup.catalog)
    assert (view.balance, view.held, view.available) == (0, 0, 0)
    assert all(reservations.get_reservation(user, hold.reservation_id, credits=counting).count == 0 for hold in holds)
    assert_ledger_consistent(user, counting)


def test_dynamodb_local_refuses_a_transaction_past_100_actions(dynamodb_local: str) -> None:
    """What the steps avoid: the engine these tests run on enforces the limit, as DynamoDB does."""
    client = boto3.client("dynamodb", endpoint_url=dynamodb_local)
    table = CreditsItem.Meta.table_name
    pk = f"USER#limit-{uuid.uuid4().hex[:8]}"
    items = [{"Put": {"TableName": table, "Item": {"pk": {"S": pk}, "sk": {"S": f"X#{n}"}}}} for n in range(101)]
    with pytest.raises(ClientError) as refused:
        client.transact_write_items(TransactItems=items)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    client.transact_write_items(TransactItems=items[:100])
