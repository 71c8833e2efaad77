"""The scheduled expiry scan through the real adapters on moto, with a controllable clock: what is due expires once
(with CreditsExpired in the outbox of the same transaction), warnings go out once per lot and window, EventBridge
rejections are retried and never marked, a run cut short by its time budget resumes, CreditsLow is backed up."""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from tests.fakes.clock import FixedClock
from tests.fakes.events import RecordingEventPublisher
from tests.helpers.moto_credits import DAY, WEEK, expired_in_outbox, items
from tests.helpers.moto_credits import MotoWorld as World
from tests.integration.conftest import outbox_events
from usercredits.adapters.dynamodb.credits import DynamoCreditsRepository
from usercredits.adapters.events import EventBridgePublisher
from usercredits.domain import balances, expiry_check, reservations, spending
from usercredits.domain.expiry_scan import ScanReport
from usercredits.domain.models import GroupPolicy, LedgerKind
from usercredits.kernel.models import DomainEvent


class CountdownBudget:
    """Runs out after ``checks`` questions (a stand-in for the Lambda's remaining time)."""

    def __init__(self, checks: int) -> None:
        self.left = checks

    def exhausted(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.fixture
def world(moto_tables: None) -> World:
    return World()


def assert_ledger_adds_up(world: World, user: str) -> None:
    by_group: dict[str, int] = Counter()
    for entry in world.ledger(user):
        by_group[entry.offer_group] += entry.tokens
    for group, total in by_group.items():
        assert total == world.balance(user, group), group


# --- expiry ---------------------------------------------------------------------------------------------------------


def test_scan_expires_lots_before_and_at_their_expiry_not_after(world: World) -> None:
    # Given three lots expiring in 1, 2 and 3 hours
    first = world.grant("u", "G", 5, timedelta(hours=1))
    second = world.grant("u", "G", 6, timedelta(hours=2))
    world.grant("u", "G", 7, timedelta(hours=3))
    # When the scan runs exactly at the second lot's expiry
    world.clock.advance(hours=2)
    report = world.scan()
    # Then the lots past and at their expiry expired, the later one did not
    assert (report.lots_expired, report.tokens_expired, report.caught_up) == (2, 11, True)
    assert world.balance("u", "G") == 7
    assert sorted((d["lotId"], d["tokens"]) for d in expired_in_outbox()) == sorted([(first, 5), (second, 6)])
    # and running again changes nothing
    assert world.scan().lots_expired == 0
    assert len(expired_in_outbox()) == 2
    # until the third one's time comes
    world.clock.advance(hours=1, seconds=1)
    assert world.scan().tokens_expired == 7
    assert world.balance("u", "G") == 0
    assert_ledger_adds_up(world, "u")


def test_expired_tokens_are_the_unused_ones_and_a_used_up_lot_expires_silently(world: World) -> None:
    # Given a lot of 10 with 4 spent, a lot of 3 all spent, and a lot without expiry
    world.grant("u", "G", 10, timedelta(days=2))
    world.grant("u", "H", 3, timedelta(days=2))
    world.grant("u", "G", 7, None)
    world.consume("u", "G", 4)
    world.consume("u", "H", 3)
    # When both expire and the scan runs
    world.clock.advance(days=3)
    report = world.scan()
    # Then only the 6 unused tokens left G, H's used-up lot closed without a movement or an event
    assert (report.lots_expired, report.tokens_expired) == (2, 6)
    expired = [e for e in world.ledger("u") if e.kind is LedgerKind.EXPIRE]
    assert [(e.offer_group, e.tokens) for e in expired] == [("G", -6)]
    assert [(d["offerGroup"], d["tokens"], d["balance"]) for d in expired_in_outbox()] == [("G", 6, 7)]
    assert (world.balance("u", "G"), world.balance("u", "H")) == (7, 0)
    assert_ledger_adds_up(world, "u")


class StaleReads:
    """Credits whose eventually consistent snapshots are the ones of an earlier moment (a lagging replica)."""

    def __init__(self, inner: DynamoCreditsRepository, stale: Any) -> None:
        self._inner = inner
        self._stale = stale
        self.reads: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def snapshot(self, user_id: str, offer_group: str | None = None, *, consistent: bool = True, **read: Any) -> Any:
        self.reads.append(consistent)
        return self._inner.snapshot(user_id, offer_group, **read) if consistent else self._stale


def test_an_expiry_planned_from_a_stale_read_fails_and_is_planned_again_from_a_consistent_one(world: World) -> None:
    # Given a lot of 10 and a replica that still shows it before 4 of it were spent
    world.grant("u", "G", 10, timedelta(days=1))
    stale = world.credits.snapshot("u", "G")
    world.consume("u", "G", 4)
    world.credits = StaleReads(world.credits, stale)  # type: ignore[assignment]
    # When the lot is due and the scan plans its expiry from that replica first
    world.clock.advance(days=2)
    report = world.scan()
    # Then the transaction planned from the stale read was refused (its drawn moved), the consistent retry expired
    # exactly the 6 unused tokens, once
    assert world.credits.reads == [False, True]  # type: ignore[attr-defined]
    assert (report.lots_expired, report.tokens_expired) == (1, 6)
    assert [d["tokens"] for d in expired_in_outbox()] == [6]
    assert world.balance("u", "G") == 0
    assert_ledger_adds_up(world, "u")


def test_a_lot_a_read_expired_first_is_not_expired_again(world: World) -> None:
    # Given a due lot that a read closed before the scan ran (CreditsExpired went to the outbox with it)
    world.grant("u", "G", 5, timedelta(hours=1))
    world.clock.advance(hours=2)
    balances.list_credits("u", credits=world.credits, clock=world.clock, catalog=world.catalog)
    # When the scan runs
    report = world.scan()
    # Then it finds nothing left to do, and the fact was told once
    assert (report.lots_expired, report.backlog) == (0, 0)
    assert [d["tokens"] for d in expired_in_outbox()] == [5]


def test_a_lapsed_hold_is_released_by_the_scan(world: World) -> None:
    world.grant("u", "G", 10, None)
    reservations.create_reservation(
        "u",
        "G",
        8,
        expires_in_seconds=60,
        idempotency_key=None,
        catalog=world.catalog,
        credits=world.credits,
        clock=world.clock,
    )
    world.clock.advance(seconds=61)
    assert world.scan().holds_released == 1
    state = world.credits.group_state("u", "G")
    assert state is not None and (state.held, state.available) == (0, 10)
    release = world.ledger("u")[0]
    assert (release.kind, release.held, release.reason) == (LedgerKind.RELEASE, -8, "hold expired")
    assert world.scan().holds_released == 0


# --- warnings -------------------------------------------------------------------------------------------------------


def test_each_window_warns_a_lot_once_when_it_enters_it(world: World) -> None:
    # Given a lot of 10 expiring in 10 days, 3 of them spent
    lot = world.grant("u", "G", 10, timedelta(days=10))
    world.consume("u", "G", 3)
    assert world.scan().expiring_soon_sent == 0  # 10 days out: in no window
    # When it comes within 7 days of its expiry, then within 1 day, with scans in between
    world.clock.advance(days=3, hours=1)
    assert world.scan().expiring_soon_sent == 1
    assert world.scan().expiring_soon_sent == 0
    world.clock.advance(days=6)
    assert world.scan().expiring_soon_sent == 1
    world.clock.advance(hours=12)
    assert world.scan().expiring_soon_sent == 0
    # Then each window warned once, with the tokens that would expire and a deterministic event id
    assert [(e.detail["windowSeconds"], e.detail["tokens"], e.detail["eventId"]) for e in world.events.accepted] == [
        (WEEK, 7, f"CreditsExpiringSoon#{lot}#{WEEK}"),
        (DAY, 7, f"CreditsExpiringSoon#{lot}#{DAY}"),
    ]


def test_a_lot_granted_inside_a_window_is_warned_only_for_the_windows_it_enters_later(world: World) -> None:
    # Given a lot expiring in 3 days (inside the 7-day window from the start)
    world.grant("u", "G", 5, timedelta(days=3))
    # When the scan runs now and once it is a day from expiry
    world.scan()
    world.clock.advance(days=2, hours=1)
    world.scan()
    # Then only the 1-day window warned
    assert [e.detail["windowSeconds"] for e in world.events.accepted] == [DAY]


def test_a_used_up_lot_is_not_warned(world: World) -> None:
    world.grant("u", "G", 5, timedelta(days=10))
    world.consume("u", "G", 5)
    world.clock.advance(days=4)
    assert world.scan().expiring_soon_sent == 0
    assert world.events.accepted == []


def test_a_rejected_warning_is_not_marked_and_is_sent_by_the_next_run(world: World) -> None:
    # Given two lots entering the 1-day window, and a bus that rejects the first one's warning once
    first = world.grant("u", "A", 5, timedelta(days=5))
    second = world.grant("u", "B", 5, timedelta(days=5, minutes=1))
    rejected: set[str] = set()

    def reject_first_once(event: DomainEvent) -> bool:
        if event.detail["lotId"] == first and first not in rejected:
            rejected.add(first)
            return True
        return False

    world.events = RecordingEventPublisher(reject=reject_first_once)
    world.clock.advance(days=4, hours=1)
    # When the scan runs
    report = world.scan(windows=(DAY,))
    # Then the accepted one is sent and marked; the rejected one is owed, and the run says it is not caught up
    assert [e.detail["lotId"] for e in world.events.accepted] == [second]
    assert (report.events_rejected, report.backlog, report.caught_up) == (1, 2, False)
    # and the next run sends only the one still owed
    again = world.scan(windows=(DAY,))
    assert [e.detail["lotId"] for e in world.events.accepted] == [second, first]
    assert (again.caught_up, world.scan(windows=(DAY,)).expiring_soon_sent) == (True, 0)


class ScriptedEventBridge:
    """A PutEvents client: rejects an entry the number of times ``fail`` says for its lot id."""

    def __init__(self, fail: dict[str, int]) -> None:
        self.fail = dict(fail)
        self.calls: list[list[str]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803 - boto's name
        self.calls.append([json.loads(entry["Detail"])["lotId"] for entry in Entries])
        results = []
        for entry in Entries:
            lot = json.loads(entry["Detail"])["lotId"]
            if self.fail.get(lot, 0) > 0:
                self.fail[lot] -= 1
                results.append({"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"})
            else:
                results.append({"EventId": str(uuid.uuid4())})
        return {"FailedEntryCount": sum("ErrorCode" in r for r in results), "Entries": results}


def test_eventbridge_partial_failures_are_retried_and_only_accepted_warnings_are_marked(world: World) -> None:
    # Given 12 lots entering the 1-day window (two PutEvents batches), with one entry rejected twice and one always
    lots = [world.grant(f"u{n}", "G", 5, timedelta(days=5, minutes=n)) for n in range(12)]
    client = ScriptedEventBridge({lots[3]: 2, lots[11]: 99})
    publisher = EventBridgePublisher("bus")
    publisher._client = client
    world.events = publisher
    world.clock.advance(days=4, hours=1)
    # When the scan runs
    report = world.scan(windows=(DAY,))
    # Then batches of 10 went out, the failed entries alone were sent again, and 11 warnings were accepted
    assert [len(call) for call in client.calls] == [10, 1, 1, 2, 1, 1]
    assert (report.expiring_soon_sent, report.events_rejected) == (11, 1)
    # and the next run sends only the never-accepted one
    client.fail[lots[11]] = 0
    client.calls.clear()
    assert world.scan(windows=(DAY,)).expiring_soon_sent == 1
    assert client.calls == [[lots[11]]]


# --- time budget and backlog ------------------------------------------------------------------------------------------


def test_a_run_cut_short_by_its_budget_resumes_and_everything_happens_once(world: World) -> None:
    # Given a backlog: 25 users with a lot due (over several hours) and 25 lots entering the 1-day window
    due = [world.grant(f"d{n}", "G", 3, timedelta(hours=1 + n % 5)) for n in range(25)]
    warned = [world.grant(f"w{n}", "G", 4, timedelta(days=3, minutes=n)) for n in range(25)]
    world.scan(windows=(DAY,))  # the cursors start here
    world.clock.advance(days=2, hours=1)
    # When runs with a small budget and small pages follow each other until one catches up
    reports: list[ScanReport] = []
    while not (reports and reports[-1].caught_up):
        reports.append(world.scan(windows=(DAY,), budget=CountdownBudget(12), page_size=4))
        assert len(reports) < 50
    # Then it took several runs, and each lot expired once and was warned once
    assert len(reports) > 2 and not reports[0].caught_up and any(r.backlog for r in reports)
    assert sum(r.lots_expired for r in reports) == 25 and sum(r.tokens_expired for r in reports) == 75
    assert sorted(d["lotId"] for d in expired_in_outbox()) == sorted(due)
    assert sorted(e.detail["lotId"] for e in world.events.accepted) == sorted(warned)
    # and a later run has nothing left
    last = world.scan(windows=(DAY,))
    assert (last.lots_expired, last.expiring_soon_sent, last.backlog) == (0, 0, 0)


def test_a_run_that_raises_saves_its_cursors_and_frees_the_lease(world: World) -> None:
    world.grant("u", "G", 5, timedelta(days=3))
    world.clock.advance(days=2, hours=1)

    class Down:
        def publish_each(self, events: list[DomainEvent]) -> list[bool]:
            raise RuntimeError("bus down")

    world.events = Down()
    with pytest.raises(RuntimeError):
        world.scan(windows=(DAY,))
    world.events = RecordingEventPublisher()
    assert world.scan(windows=(DAY,)).expiring_soon_sent == 1  # not skipped: the lease was given back


def test_an_overlapping_run_skips(world: World) -> None:
    world.grant("u", "G", 5, timedelta(hours=1))
    world.clock.advance(hours=2)
    # Given a run holding the lease
    assert world.index.begin("other-run", world.clock.now(), world.clock.now() + timedelta(minutes=2)) is not None
    # When another run starts, it skips and touches nothing
    report = world.scan()
    assert report.skipped and report.lots_expired == 0 and world.balance("u", "G") == 5
    # and once the lease ran out (the holder died) a run goes ahead
    world.clock.advance(minutes=3)
    assert world.scan().lots_expired == 1


# --- CreditsLow backstop --------------------------------------------------------------------------------------------


def low_marks() -> list[dict[str, Any]]:
    return [item for item in items() if item["itemType"]["S"] == "creditGroup" and "expiryBucket" in item]


def test_credits_low_a_spend_could_not_publish_is_sent_by_the_scan_once(world: World) -> None:
    # Given a threshold of 5 and a spend crossing it while the bus is down
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, None)
    world.consume("u", "G", 6, events=RecordingEventPublisher(failure=RuntimeError("bus down")))
    assert len(low_marks()) == 1
    # When the scan runs right away, the spend might still be publishing: it waits
    assert world.scan().low_sent == 0
    # Then a later run sends it once, with an event id
    world.clock.advance(minutes=2)
    assert world.scan().low_sent == 1
    assert world.scan().low_sent == 0
    [event] = world.events.accepted
    assert event.kind == "CreditsLow"
    assert {k: event.detail[k] for k in ("userId", "offerGroup", "balance", "threshold")} == {
        "userId": "u",
        "offerGroup": "G",
        "balance": 4,
        "threshold": 5,
    }
    assert str(event.detail["eventId"]).startswith("CreditsLow#")
    assert low_marks() == []


def test_a_credits_low_resent_by_the_scan_carries_the_spends_event_id(world: World) -> None:
    # Given a spend whose CreditsLow reached the bus but whose answer was lost (so the mark stays)
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, None)
    bus = RecordingEventPublisher(failure=TimeoutError("no answer from the bus"), delivered=True)
    world.consume("u", "G", 6, events=bus)
    # When the scan sends it again
    world.clock.advance(minutes=2)
    assert world.scan().low_sent == 1
    # Then both copies carry the same event id: a consumer keeps one
    [first] = bus.accepted
    [again] = world.events.accepted
    assert first.detail["eventId"] == again.detail["eventId"]


def test_a_published_credits_low_leaves_no_mark(world: World) -> None:
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, None)
    bus = RecordingEventPublisher()
    world.consume("u", "G", 6, events=bus)
    assert [e.kind for e in bus.accepted] == ["CreditsLow"]
    assert low_marks() == []
    world.clock.advance(minutes=2)
    assert world.scan().low_sent == 0


def test_a_group_back_above_its_threshold_is_not_warned_late(world: World) -> None:
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, None)
    world.consume("u", "G", 6, events=RecordingEventPublisher(failure=RuntimeError("bus down")))
    world.grant("u", "G", 10, None)  # topped up before the scan came by
    world.clock.advance(minutes=2)
    assert world.scan().low_sent == 0
    assert low_marks() == []


def low_in_outbox() -> list[tuple[int, int]]:
    return [(d["balance"], d["threshold"]) for kind, d in outbox_events(items()) if kind == "CreditsLow"]


def test_an_expiry_that_crosses_the_threshold_writes_credits_low_with_it(world: World) -> None:
    # Given a threshold of 5 and 13 tokens, 10 of them expiring
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, timedelta(hours=1))
    world.grant("u", "G", 3, None)
    world.clock.advance(hours=2)
    # When the scan expires them
    report = world.scan()
    # Then CreditsLow (balance 3) is in the outbox, written by the expiry's own transaction, next to CreditsExpired
    assert report.tokens_expired == 10
    assert low_in_outbox() == [(3, 5)]
    assert [kind for kind, _ in outbox_events(items())][-2:] == ["CreditsExpired", "CreditsLow"]
    assert world.events.accepted == [] and low_marks() == []
    # And a second run owes nothing more
    world.scan()
    assert low_in_outbox() == [(3, 5)]


@pytest.mark.parametrize("how", ["read", "spend", "expiry-check"])
def test_an_expiry_made_by_a_read_or_a_spend_also_writes_credits_low(world: World, how: str) -> None:
    # Given a threshold of 5 and 13 tokens, 10 of them past their expiry, before any scan came by
    world.catalog.put_group_policy(GroupPolicy(offer_group="G", low_threshold=5))
    world.grant("u", "G", 10, timedelta(hours=1))
    world.grant("u", "G", 3, None)
    world.clock.advance(hours=2)
    # When a read, a spend or the per-user check closes the lots
    deps: dict[str, Any] = {"credits": world.credits, "clock": world.clock, "catalog": world.catalog}
    if how == "read":
        balances.list_credits("u", **deps)
    elif how == "spend":
        world.consume("u", "G", 1)
    else:
        expiry_check.check_expiry("u", warn_before_seconds=0, low={}, **deps)
    # Then the expiry's CreditsLow is in the outbox once (balance 3: before the spend of 1)
    assert low_in_outbox() == [(3, 5)]
    # And the scan, coming later, has nothing left to expire or to send
    report = world.scan()
    assert (report.tokens_expired, report.low_sent) == (0, 0)
    assert low_in_outbox() == [(3, 5)]


# --- the handler ----------------------------------------------------------------------------------------------------


def test_handler_runs_the_scan_and_reports_metrics(
    moto_tables: None, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from expiry_scan import handler
    from tests.conftest import load_event
    from usercredits.settings import get_expiry_scan_settings

    boto3.client("events").create_event_bus(Name=os.environ["EVENT_BUS_NAME"])
    handler.dependencies.cache_clear()
    get_expiry_scan_settings.cache_clear()
    # Given a lot that expired yesterday (granted with a clock in the past)
    credits = DynamoCreditsRepository()
    past = FixedClock(datetime.now(UTC) - timedelta(days=3))
    spending.grant_credits("u", "G", 9, expires=past.now() + timedelta(days=2), reason="t", credits=credits, clock=past)
    # When the scheduled event arrives
    result = handler.lambda_handler(load_event("expiry_scan/scheduled.json"), lambda_context)
    # Then the lot expired, and the run's figures are metrics
    assert result["lotsExpired"] == 1 and result["tokensExpired"] == 9 and result["caughtUp"] is True
    assert [d["tokens"] for d in expired_in_outbox()] == [9]
    emitted = capsys.readouterr().out
    assert '"LotsExpired"' in emitted and '"Backlog"' in emitted
    handler.dependencies.cache_clear()
