"""Reading credits: the user's groups with their balances and lots, the ledger, and usage over a period."""

from __future__ import annotations

from datetime import datetime

from usercredits.domain.credits import CreditGroup, credit_group, empty_group
from usercredits.domain.lapses import catch_up
from usercredits.domain.models import GroupState, LedgerEntry
from usercredits.domain.ports import CatalogRepository, CreditSnapshot, CreditsRepository
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import Page


def list_credits(
    user_id: str, *, credits: CreditsRepository, clock: Clock, catalog: CatalogRepository
) -> list[CreditGroup]:
    """Every group of the user with balance, held, available, window and lots (``catalog``: the thresholds of a
    ``CreditsLow`` that closing an expired lot may owe)."""
    snapshot = _fresh_view(user_id, None, credits=credits, clock=clock, catalog=catalog)
    return [_shown(state, snapshot) for _, state in sorted(snapshot.groups.items())]


def get_credit_group(
    user_id: str,
    offer_group: str,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
    lots_after: str | None = None,
) -> CreditGroup:
    """One group with its first open lots, or those after ``lots_after`` (a ``lotsCursor`` it gave); a group never
    bought has balance 0."""
    snapshot = _fresh_view(user_id, offer_group, credits=credits, clock=clock, catalog=catalog, lots_after=lots_after)
    state = snapshot.groups.get(offer_group)
    return _shown(state, snapshot) if state else empty_group(offer_group)


def list_ledger(
    user_id: str, *, offer_group: str | None, limit: int, cursor: str | None, credits: CreditsRepository
) -> Page[LedgerEntry]:
    """The user's movements, newest first, each with its signed tokens and the group's balance right after it."""
    return credits.ledger_page(user_id, offer_group=offer_group, limit=limit, cursor=cursor)


def usage_totals(
    user_id: str,
    *,
    start: datetime,
    end: datetime,
    spent_only: bool,
    credits: CreditsRepository,
) -> dict[str, int]:
    """Sum of the user's movements per group with ``start <= createdAt < end`` (only spends, the negative ones, with
    ``spent_only``): the seed's checkTokens / consumptionInDateRange, per user instead of across all users."""
    totals: dict[str, int] = {}
    cursor: str | None = None
    while True:
        page = credits.ledger_page(user_id, offer_group=None, limit=200, cursor=cursor)
        for entry in page.items:
            if start <= entry.created_at < end and (entry.tokens < 0 or not spent_only):
                totals[entry.offer_group] = totals.get(entry.offer_group, 0) + entry.tokens
        cursor = page.next_cursor
        if cursor is None or (page.items and page.items[-1].created_at < start):
            return totals


def _fresh_view(
    user_id: str,
    offer_group: str | None,
    *,
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
    lots_after: str | None = None,
) -> CreditSnapshot:
    """One read of what the user's credits show; lots found past their expiry are closed first (an extra write and
    read that happens only when one is due)."""
    snapshot = credits.view(user_id, offer_group, lots_after=lots_after)
    if catch_up(user_id, snapshot, credits=credits, clock=clock, catalog=catalog):
        return credits.view(user_id, offer_group, lots_after=lots_after)
    return snapshot


def _shown(state: GroupState, snapshot: CreditSnapshot) -> CreditGroup:
    group = state.offer_group
    before, cursor = snapshot.lots_before.get(group, 0), snapshot.more_lots.get(group)
    return credit_group(state, snapshot.lots, before=before, cursor=cursor)
