"""Refunds and disputes: money going back takes back the credits it paid for, once (see ``reversal`` for the rules).

A report (a verified ``charge.refunded`` / ``charge.dispute.*`` event) is merged into its order and settled in one
conditional transaction that also records the Stripe event id, so a redelivery changes nothing and two reports
racing each other are applied one after the other. A report about an order not paid yet is recorded on the order;
paying it later settles it (``settle_returned`` runs right after the grant), so a refund that arrives before the
payment's success is not lost.
"""

from __future__ import annotations

from usercredits.domain.lapses import catch_up
from usercredits.domain.models import GRANTED, Order
from usercredits.domain.ports import CreditSnapshot, RefundPorts, order_for_intent
from usercredits.domain.reversal import ChargeReport, merge_report, owed_lots, plan_reversal, touched_groups
from usercredits.errors import ConflictError
from usercredits.kernel.retries import OPTIMISTIC_ATTEMPTS
from usercredits.kernel.writes import IdempotencyRecord, IdempotentReplayError

#: RefundPorts is part of this use case's interface (the lifecycle harness builds it as ``refunds.RefundPorts``).
__all__ = ["RefundPorts", "apply_charge_report", "settle_returned"]


def apply_charge_report(event_id: str, kind: str, report: ChargeReport, *, ports: RefundPorts) -> str:
    """Apply one verified refund or dispute event to its order; returns what happened (for logs and metrics)."""
    found = order_for_intent(report.payment_intent_id, report.metadata, ports.orders)
    if found is None:
        return "unknown-order"
    record = IdempotencyRecord.of("stripe-event", event_id, {"type": kind}, found[1])
    for _ in range(OPTIMISTIC_ATTEMPTS):
        read = ports.orders.get_order(*found)
        if read is None:
            return "unknown-order"
        if report.currency.lower() != read.total.currency:
            return "currency-mismatch"  # not money of this order: nothing to take back
        outcome = _settle(merge_report(read, report), read, record, ports)
        if outcome is not None:
            return outcome
    raise ConflictError("the order kept changing while a refund was applied; retry")


def settle_returned(user_id: str, order_id: str, *, ports: RefundPorts) -> str:
    """Settle money that went back before the order was paid (called right after the grant); no-op otherwise."""
    for _ in range(OPTIMISTIC_ATTEMPTS):
        read = ports.orders.get_order(user_id, order_id)
        if (
            read is None
            or read.status not in GRANTED
            or (read.returned_amount == read.revoked_for_amount and read.withdrawn == read.fully_returned)
        ):
            return "unchanged"
        outcome = _settle(read, read, None, ports)
        if outcome is not None:
            return outcome
    raise ConflictError("the order kept changing while a refund was applied; retry")


def _settle(order: Order, read: Order, record: IdempotencyRecord | None, ports: RefundPorts) -> str | None:
    """One attempt: bring the order's groups up to date, plan against fresh credits and write; None when something
    changed meanwhile (try again)."""
    granted = order.status in GRANTED
    groups = touched_groups(order) if granted else set()
    mine = {lot.lot_id for lot in owed_lots(order)}
    snapshot = CreditSnapshot()
    if granted:
        snapshot = ports.credits.snapshot(order.user_id, closed_ids=mine)
        if catch_up(
            order.user_id, snapshot, groups=groups, credits=ports.credits, clock=ports.clock, catalog=ports.catalog
        ):  # nothing is revoked from a lot that is past its expiry, nor kept on a hold that is past its own
            snapshot = ports.credits.snapshot(order.user_id, closed_ids=mine)
    plan = plan_reversal(
        order,
        read,
        groups={group: state for group, state in snapshot.groups.items() if group in groups},
        lots=[lot for lot in [*snapshot.lots, *snapshot.closed_lots] if lot.lot_id in mine],
        holds=snapshot.holds,
        policies={group: ports.catalog.group_policy(group) for group in groups},
        now=ports.clock.now(),
        open_lots=[lot for lot in snapshot.lots if lot.offer_group in groups],
    )
    if not plan.changes_anything:
        return "unchanged"  # an older or repeated report: nothing new
    try:
        if not ports.reversals.apply_reversal(plan, record):
            return None
    except IdempotentReplayError:
        return "unchanged"  # this very event was applied already
    moved = sum(change.balance for change in plan.groups.values())
    if not granted or not plan.groups:
        return f"recorded ({plan.order.status.value})"
    return f"revoked {-moved}" if moved <= 0 else f"restored {moved}"
