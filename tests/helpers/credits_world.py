"""A user's credits on the in-memory fakes, driven through the consumption use cases (for fast unit tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.credits import InMemoryCreditsRepository
from tests.fakes.events import RecordingEventPublisher
from usercredits.domain import balances, lapses, reservations, spending
from usercredits.domain.credits import CreditGroup
from usercredits.domain.models import GroupPolicy, LedgerEntry, Reservation

USER = "alice"


@dataclass
class CreditsWorld:
    """The ports of the consumption use cases, as fakes, and one call per use case for ``USER``."""

    credits: InMemoryCreditsRepository = field(default_factory=InMemoryCreditsRepository)
    catalog: InMemoryCatalogRepository = field(default_factory=InMemoryCatalogRepository)
    clock: FixedClock = field(default_factory=FixedClock)
    events: RecordingEventPublisher = field(default_factory=RecordingEventPublisher)

    def policy(self, group: str = "G", **fields: object) -> None:
        self.catalog.put_group_policy(GroupPolicy.model_validate({"offer_group": group, **fields}))

    def grant(self, tokens: int, group: str = "G", *, days: float | None = None, key: str | None = None) -> LedgerEntry:
        expires = self.clock.now() + timedelta(days=days) if days is not None else None
        return spending.grant_credits(
            USER,
            group,
            tokens,
            expires=expires,
            reason="t",
            idempotency_key=key,
            credits=self.credits,
            clock=self.clock,
        )

    def consume(self, count: int, group: str = "G", *, key: str | None = None) -> spending.Consumed:
        return spending.consume_credits(
            USER,
            group,
            count,
            idempotency_key=key,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
            events=self.events,
        )

    def hold(self, count: int, group: str = "G", *, seconds: int | None = None, key: str | None = None) -> Reservation:
        return reservations.create_reservation(
            USER,
            group,
            count,
            expires_in_seconds=seconds,
            idempotency_key=key,
            catalog=self.catalog,
            credits=self.credits,
            clock=self.clock,
        )

    def capture(self, hold: Reservation, count: int | None = None) -> Reservation:
        return reservations.capture_reservation(
            USER,
            hold.reservation_id,
            count,
            credits=self.credits,
            clock=self.clock,
            catalog=self.catalog,
            events=self.events,
        )

    def release(self, hold: Reservation) -> Reservation:
        return reservations.release_reservation(USER, hold.reservation_id, credits=self.credits, clock=self.clock)

    def expire(self, group: str = "G") -> lapses.Expired:
        return lapses.expire_group(USER, group, credits=self.credits, clock=self.clock, catalog=self.catalog)

    def shown(self, group: str = "G") -> CreditGroup:
        """The group as ``GET /credits/{group}`` reads it (holds and lots past their expiry are settled first)."""
        return balances.get_credit_group(USER, group, credits=self.credits, clock=self.clock, catalog=self.catalog)

    def figures(self, group: str = "G") -> tuple[int, int, int]:
        """(balance, held, available) as a read shows them."""
        shown = self.shown(group)
        return shown.balance, shown.held, shown.available

    def ledger(self, group: str | None = "G") -> list[LedgerEntry]:
        """Every movement, newest first."""
        page = balances.list_ledger(USER, offer_group=group, limit=1000, cursor=None, credits=self.credits)
        return page.items

    def outbox_kinds(self) -> list[str]:
        return [event.kind for event in self.credits.outbox]
