"""The reference model of the money lifecycle: what must be true, in plain Python, written from the README's rules.

It knows nothing of DynamoDB, handlers or ULIDs' layout; the harness (``tests/lifecycle/machine.py``) drives the real
handlers and the model side by side and compares what the API shows with what the model says.

The rules it encodes (README "Behaviour"):

- **Time.** Lots expire and holds lapse at their time: whatever touches a group first brings it up to date, so the model
  applies them eagerly, in time order. An expiry takes the lot's remaining tokens out of the balance; when that leaves
  the available balance below the group's floor, the group's holds are reduced first (newest first).
- **Burn order.** Spends draw from the open lots in burn order: soonest expiry first (none last), then the oldest
  grant, then the lot id. A lot's remaining is its tokens minus revoked minus its share of what was drawn.
- **Payments.** An event about an intent that is not the order's current one never changes the order's state. A
  success pays a payable order (pending, refused, error), whichever of its intents succeeded; a success for an order
  another intent already paid, or that can no longer be paid, is refunded in full automatically: every succeeded
  payment ends as exactly one grant or one refund.
- **Money going back** (refunds, disputes of the intent that paid): each lot owes ``ceil(tokens × returned / total)``;
  an open lot gives it in full (its remaining first, then the group's other tokens, then as a debt: a negative
  balance the next grants repay); holds are reduced before the available balance goes below the floor. A lot that has
  expired owes only what it had used beyond what is still paid for. A won dispute gives back what it took, where it
  is still owed. A purchase whose money went back in full no longer counts: its window is withdrawn (no unlocking,
  no subscription, appendDate starts from the purchases that still count), and a full refund closes its lots.
- **Per-user limits.** Orders of an offer with ``perUserLimit`` count while pending, paid or expired.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# --- catalog ---------------------------------------------------------------------------------------------------------


@dataclass
class MOffer:
    offer_id: str
    group: str
    price: int
    tokens: int
    cycle: str  # once | daily | weekly | monthly
    append_date: bool = False
    quantity_limit: int | None = None
    per_user_limit: int | None = None
    unlocked_by: tuple[str, ...] = ()
    bundle: tuple[tuple[str, str, int], ...] = ()  # (offer id, group, quantity)
    retired: bool = False

    def body(self) -> dict[str, object]:
        """The ``PUT /admin/offers/{offerId}`` body."""
        body: dict[str, object] = {
            "name": self.offer_id,
            "offerGroup": self.group,
            "prices": [{"amount": self.price, "currency": "usd"}],
            "tokens": self.tokens,
            "cycle": self.cycle,
            "appendDate": self.append_date,
            "unlockedBy": list(self.unlocked_by),
            "combinedItems": [{"offerId": o, "offerGroup": g, "quantity": q} for o, g, q in self.bundle],
            "retired": self.retired,
        }
        if self.quantity_limit is not None:
            body["quantityLimit"] = self.quantity_limit
        if self.per_user_limit is not None:
            body["perUserLimit"] = self.per_user_limit
        return body


@dataclass
class MPolicy:
    overdraft: str = "none"  # none | limited | unlimited
    limit: int = 0
    low: int | None = None

    @property
    def floor(self) -> int | None:
        if self.overdraft == "unlimited":
            return None
        return -self.limit if self.overdraft == "limited" else 0


def catalog() -> dict[str, MOffer]:
    """The harness's catalog: priced and free offers, perpetual lots, a bundle with appendDate, a locked offer and a
    window-only pass."""
    offers = [
        MOffer("Pack", "Tok", 1000, 10, "monthly", quantity_limit=3),
        MOffer("Forever", "Tok", 500, 5, "once"),
        MOffer("Free", "Gift", 0, 3, "daily", quantity_limit=1, per_user_limit=2),
        MOffer("Bundle", "Club", 3000, 4, "monthly", append_date=True, bundle=(("Pack", "Tok", 1),)),
        MOffer("Vip", "Vip", 2000, 2, "weekly", unlocked_by=("Club",)),
        MOffer("Pass", "Pass", 700, 0, "weekly", append_date=True),
    ]
    return {offer.offer_id: offer for offer in offers}


def policies() -> dict[str, MPolicy]:
    return {"Tok": MPolicy("none", 0, 5), "Club": MPolicy("limited", 3, None)}


# --- time ------------------------------------------------------------------------------------------------------------

MAX_WINDOW = timedelta(days=100 * 366)


def add_months(start: datetime, months: int) -> datetime:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return start.replace(year=year, month=month, day=min(start.day, calendar.monthrange(year, month)[1]))


def cycle_end(start: datetime, cycle: str, units: int) -> datetime | None:
    if cycle == "once":
        return None
    if cycle == "daily":
        return start + timedelta(days=units)
    if cycle == "weekly":
        return start + timedelta(days=7 * units)
    if cycle == "monthly":
        return add_months(start, units)
    raise AssertionError(cycle)


# --- credits ---------------------------------------------------------------------------------------------------------


@dataclass
class MLot:
    lot_id: str
    group: str
    tokens: int
    starts: datetime
    expires: datetime | None
    granted_at: datetime
    order_id: str | None
    revoked: int = 0
    closed: bool = False
    expired: int = 0  # remaining tokens that left when it expired
    debt: int = 0  # tokens taken after it closed (it had used what was no longer paid for)

    @property
    def effective(self) -> int:
        return self.tokens - self.revoked

    def burn_key(self) -> tuple[bool, datetime, datetime, str]:
        return (self.expires is None, self.expires or self.granted_at, self.granted_at, self.lot_id)


@dataclass
class MHold:
    hold_id: str
    group: str
    count: int
    expires: datetime
    status: str = "held"  # held | captured | released
    captured: int = 0


@dataclass
class MPurchase:
    """One purchase's window in a group (an order or a bundle line)."""

    purchase_id: str
    offer_id: str
    starts: datetime
    expires: datetime | None


@dataclass
class MGroup:
    name: str
    balance: int = 0
    held: int = 0
    drawn: int = 0
    lots: dict[str, MLot] = field(default_factory=dict)
    purchases: dict[str, MPurchase] = field(default_factory=dict)  # counted purchases only
    expired_lots: int = 0

    @property
    def available(self) -> int:
        return self.balance - self.held

    def open_lots(self) -> list[MLot]:
        return sorted((lot for lot in self.lots.values() if not lot.closed), key=MLot.burn_key)

    def remaining(self) -> dict[str, int]:
        left, result = max(self.drawn, 0), {}
        for lot in self.open_lots():
            used = min(lot.effective, left)
            left -= used
            result[lot.lot_id] = lot.effective - used
        return result

    def window_end(self) -> datetime | None:
        ends = [p.expires for p in self.purchases.values() if p.expires is not None]
        return max(ends) if ends else None

    def perpetual(self) -> bool:
        return any(p.expires is None for p in self.purchases.values())

    def active(self, now: datetime) -> bool:
        end = self.window_end()
        return self.perpetual() or (end is not None and end > now)


# --- orders and Stripe -----------------------------------------------------------------------------------------------


@dataclass
class MLine:
    offer_id: str
    group: str
    tokens: int
    cycle: str
    quantity: int
    append_date: bool
    child_id: str
    starts: datetime | None = None
    expires: datetime | None = None


@dataclass
class MOrder:
    order_id: str
    user: str
    offer_id: str
    group: str
    quantity: int
    total: int
    tokens: int
    cycle: str
    append_date: bool
    lines: list[MLine]
    status: str
    limited: bool  # the offer had a perUserLimit when the order was placed
    counted_limit: bool  # holds a slot of the offer's perUserLimit
    intents: list[str] = field(default_factory=list)
    current_intent: str | None = None
    paying_intent: str | None = None
    refunded: int = 0
    disputed: int = 0
    dispute: str | None = None  # open | won | lost
    revoked_for: int = 0
    starts: datetime | None = None
    expires: datetime | None = None
    children_status: dict[str, str] = field(default_factory=dict)
    duplicate_refunds: set[str] = field(default_factory=set)

    @property
    def returned(self) -> int:
        return min(self.total, self.refunded + self.disputed)

    @property
    def withdrawn(self) -> bool:
        return self.total > 0 and self.returned >= self.total

    def granted(self) -> bool:
        return self.status in ("paid", "expired", "refunded")

    def payable(self) -> bool:
        return self.status in ("pending", "refused", "error")

    def lot_ids(self) -> list[tuple[str, str, int]]:
        """(lot id, group, tokens) of every lot paying it granted."""
        lots = [(self.order_id, self.group, self.tokens)] if self.tokens > 0 else []
        return lots + [(line.child_id, line.group, line.tokens) for line in self.lines if line.tokens > 0]


@dataclass
class MIntent:
    intent_id: str
    order_id: str
    user: str
    amount: int
    status: str = "requires_payment_method"  # as Stripe has it
    refunded: int = 0
    dispute: str | None = None
    dispute_amount: int = 0
    success_delivered: bool = False
    # Facts reported to us about this intent (webhooks delivered): what the system knows.
    known_refunded: int = 0
    known_disputed: int = 0
    known_dispute: str | None = None


def owed(tokens: int, returned: int, total: int) -> int:
    if total <= 0 or returned <= 0:
        return 0
    return -(-tokens * min(returned, total) // total)


class Divergence(AssertionError):
    """What the system did differs from what the model says must happen."""


# --- the model -------------------------------------------------------------------------------------------------------


@dataclass
class MUser:
    name: str
    orders: dict[str, MOrder] = field(default_factory=dict)
    groups: dict[str, MGroup] = field(default_factory=dict)
    holds: dict[str, MHold] = field(default_factory=dict)
    limit_slots: dict[str, int] = field(default_factory=dict)

    def group(self, name: str) -> MGroup:
        return self.groups.setdefault(name, MGroup(name))


class Model:
    """The whole world: catalog, users, Stripe's intents, and the clock."""

    def __init__(self, users: list[str], now: datetime) -> None:
        self.now = now
        self.offers = catalog()
        self.policies = policies()
        self.users = {name: MUser(name) for name in users}
        self.intents: dict[str, MIntent] = {}

    def policy(self, group: str) -> MPolicy:
        return self.policies.get(group) or MPolicy()

    # --- time ------------------------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        target = self.now + timedelta(seconds=seconds)
        for user in self.users.values():
            for _moment, kind, key in sorted(self._timed(user, target)):
                if kind == "hold":
                    hold = user.holds[key]
                    if hold.status == "held":
                        self._release(user, hold)
                else:
                    group, lot_id = key.split("\n")
                    self._expire(user, user.groups[group], user.groups[group].lots[lot_id])
        self.now = target

    def _timed(self, user: MUser, until: datetime) -> Iterator[tuple[datetime, str, str]]:
        for hold in user.holds.values():
            if hold.status == "held" and hold.expires <= until:
                yield hold.expires, "hold", hold.hold_id
        for group in user.groups.values():
            for lot in group.lots.values():
                if not lot.closed and lot.expires is not None and lot.expires <= until:
                    yield lot.expires, "lot", f"{group.name}\n{lot.lot_id}"

    def _expire(self, user: MUser, group: MGroup, lot: MLot) -> None:
        remaining = group.remaining()[lot.lot_id]
        group.balance -= remaining
        group.drawn -= lot.effective - remaining
        lot.closed, lot.expired = True, remaining
        group.expired_lots += 1
        if lot.order_id is not None:
            order = self._order_of_lot(user, lot.order_id)
            if order is not None:
                root, child = order
                if child is None and root.status == "paid":
                    root.status = "expired"
                elif child is not None and root.children_status.get(child) == "paid":
                    root.children_status[child] = "expired"
        self._reduce_holds(user, group)

    def _reduce_holds(self, user: MUser, group: MGroup) -> None:
        floor = self.policy(group.name).floor
        if floor is None or group.available >= floor:
            return
        short = floor - group.available
        for hold in sorted(user.holds.values(), key=lambda h: h.hold_id, reverse=True):
            if short <= 0:
                break
            if hold.group != group.name or hold.status != "held":
                continue
            cut = min(hold.count, short)
            hold.count -= cut
            group.held -= cut
            short -= cut
            if hold.count == 0:
                hold.status = "released"

    def _order_of_lot(self, user: MUser, lot_id: str) -> tuple[MOrder, str | None] | None:
        if lot_id in user.orders:
            return user.orders[lot_id], None
        root = lot_id.rsplit("-", 1)[0]
        if root in user.orders and lot_id in user.orders[root].children_status:
            return user.orders[root], lot_id
        return None

    # --- spending --------------------------------------------------------------------------------------------------

    def covered(self, user: str, group: str, count: int) -> bool:
        state = self.users[user].groups.get(group)
        available = state.available if state else 0
        floor = self.policy(group).floor
        return floor is None or available - count >= floor

    def consume(self, user: str, group: str, count: int) -> None:
        state = self.users[user].group(group)
        state.balance -= count
        state.drawn += count

    def hold(self, user: str, hold_id: str, group: str, count: int, seconds: int) -> None:
        state = self.users[user].group(group)
        state.held += count
        self.users[user].holds[hold_id] = MHold(hold_id, group, count, self.now + timedelta(seconds=seconds))

    def capture(self, user: str, hold_id: str, count: int) -> None:
        person = self.users[user]
        hold = person.holds[hold_id]
        group = person.groups[hold.group]
        group.held -= hold.count
        group.balance -= count
        group.drawn += count
        hold.status, hold.captured = "captured", count

    def release(self, user: str, hold_id: str) -> None:
        person = self.users[user]
        self._release(person, person.holds[hold_id])

    def _release(self, user: MUser, hold: MHold) -> None:
        user.groups[hold.group].held -= hold.count
        hold.status = "released"

    def grant(self, user: str, group: str, lot_id: str, tokens: int, expires: datetime | None) -> None:
        state = self.users[user].group(group)
        state.balance += tokens
        state.lots[lot_id] = MLot(lot_id, group, tokens, self.now, expires, self.now, None)

    # --- ordering --------------------------------------------------------------------------------------------------

    def order_refusal(self, user: str, offer_id: str, quantity: int) -> int | None:
        """The status ``POST /orders`` must answer with when the order is refused (None: accepted)."""
        offer = self.offers[offer_id]
        person = self.users[user]
        if offer.retired:
            return 404
        if offer.quantity_limit is not None and quantity > offer.quantity_limit:
            return 409
        if offer.unlocked_by and not any(
            person.groups[g].active(self.now) for g in offer.unlocked_by if g in person.groups
        ):
            return 403
        if offer.per_user_limit is not None and person.limit_slots.get(offer_id, 0) >= offer.per_user_limit:
            return 409
        return None

    def place(self, user: str, order_id: str, offer_id: str, quantity: int, intent_id: str | None) -> MOrder:
        offer = self.offers[offer_id]
        person = self.users[user]
        lines = []
        for index, (item, group, per) in enumerate(offer.bundle, start=1):
            bundled = self.offers[item]
            lines.append(
                MLine(
                    item,
                    group,
                    bundled.tokens * per * quantity,
                    bundled.cycle,
                    per * quantity,
                    bundled.append_date,
                    f"{order_id}-{index:02d}",
                )
            )
        order = MOrder(
            order_id=order_id,
            user=user,
            offer_id=offer_id,
            group=offer.group,
            quantity=quantity,
            total=offer.price * quantity,
            tokens=offer.tokens * quantity,
            cycle=offer.cycle,
            append_date=offer.append_date,
            lines=lines,
            status="pending",
            limited=offer.per_user_limit is not None,
            counted_limit=offer.per_user_limit is not None,
        )
        if order.counted_limit:
            person.limit_slots[offer_id] = person.limit_slots.get(offer_id, 0) + 1
        person.orders[order_id] = order
        if intent_id is not None:
            self.new_intent(order, intent_id)
        else:
            self._pay(order, None)
        return order

    def new_intent(self, order: MOrder, intent_id: str) -> None:
        order.intents.append(intent_id)
        order.current_intent = intent_id
        self.intents[intent_id] = MIntent(intent_id, order.order_id, order.user, order.total)

    def _pay(self, order: MOrder, intent_id: str | None) -> None:
        person = self.users[order.user]
        root_start = self._start(person, order.group, order.append_date)
        root_end = cycle_end(root_start, order.cycle, order.quantity)
        order.starts, order.expires = root_start, root_end
        self._add_purchase(person, order.group, order.order_id, order.offer_id, root_start, root_end)
        if order.tokens > 0:
            self._add_lot(person, order.group, order.order_id, order.tokens, root_start, root_end, order.order_id)
        for line in order.lines:
            if line.append_date:
                starts = self._start(person, line.group, True)
                expires = cycle_end(starts, line.cycle, line.quantity)
            else:
                starts, expires = root_start, root_end
            line.starts, line.expires = starts, expires
            self._add_purchase(person, line.group, line.child_id, line.offer_id, starts, expires)
            if line.tokens > 0:
                self._add_lot(person, line.group, line.child_id, line.tokens, starts, expires, line.child_id)
            order.children_status[line.child_id] = "paid"
        if order.limited and not order.counted_limit:  # a success after a failure counts again (money came in)
            order.counted_limit = True
            person.limit_slots[order.offer_id] = person.limit_slots.get(order.offer_id, 0) + 1
        order.status = "paid"
        order.paying_intent = intent_id
        if intent_id is not None:
            order.current_intent = intent_id
            known = self.intents[intent_id]
            order.refunded, order.disputed, order.dispute = (
                known.known_refunded,
                known.known_disputed,
                known.known_dispute,
            )
            self._settle_returned(order)

    def _start(self, person: MUser, group: str, append_date: bool) -> datetime:
        state = person.groups.get(group)
        end = state.window_end() if state else None
        if append_date and end is not None and end > self.now:
            return end
        return self.now

    def _add_purchase(
        self, person: MUser, group: str, purchase_id: str, offer_id: str, starts: datetime, expires: datetime | None
    ) -> None:
        person.group(group).purchases[purchase_id] = MPurchase(purchase_id, offer_id, starts, expires)

    def _add_lot(
        self,
        person: MUser,
        group: str,
        lot_id: str,
        tokens: int,
        starts: datetime,
        expires: datetime | None,
        order_id: str,
    ) -> None:
        state = person.group(group)
        state.balance += tokens
        state.lots[lot_id] = MLot(lot_id, group, tokens, starts, expires, self.now, order_id)

    def _stop_counting(self, order: MOrder) -> None:
        if order.counted_limit:
            order.counted_limit = False
            slots = self.users[order.user].limit_slots
            slots[order.offer_id] = slots.get(order.offer_id, 0) - 1

    # --- Stripe events ---------------------------------------------------------------------------------------------

    def expected_intent_outcome(self, intent_id: str, kind: str) -> str:
        """What ``on_intent_event`` would do, without doing it."""
        intent = self.intents[intent_id]
        order = self.users[intent.user].orders[intent.order_id]
        if kind != "payment_intent.succeeded":
            return "moved-or-nothing"
        if order.granted() and order.paying_intent == intent_id:
            return "nothing"
        if order.payable():
            return "paid"
        return "nothing" if intent.refunded >= intent.amount else "refund-duplicate"

    def on_intent_event(self, intent_id: str, kind: str) -> str:
        """Apply a delivered ``payment_intent.*`` event; returns what must have happened (for the harness):
        ``paid``, ``refund-duplicate``, ``moved`` or ``nothing``."""
        intent = self.intents[intent_id]
        order = self.users[intent.user].orders[intent.order_id]
        if kind == "payment_intent.succeeded":
            intent.success_delivered = True
            outcome = self.expected_intent_outcome(intent_id, kind)
            if outcome == "paid":
                self._pay(order, intent_id)
            return outcome
        if intent_id != order.current_intent or order.granted():
            return "nothing"
        target = {
            "payment_intent.payment_failed": "refused",
            "payment_intent.requires_action": "error",
            "payment_intent.canceled": "canceled",
        }[kind]
        allowed = {"refused": ("pending", "error"), "error": ("pending",), "canceled": ("pending", "refused", "error")}
        if order.status not in allowed[target]:
            return "nothing"
        order.status = target
        self._stop_counting(order)
        return "moved"

    def refund_duplicate(self, intent_id: str) -> None:
        intent = self.intents[intent_id]
        intent.refunded = intent.amount
        self.users[intent.user].orders[intent.order_id].duplicate_refunds.add(intent_id)

    def on_charge_report(
        self, intent_id: str, *, refunded: int | None = None, dispute: str | None = None, amount: int = 0
    ) -> None:
        """Apply a delivered ``charge.refunded`` / ``charge.dispute.*`` event (cumulative figures)."""
        intent = self.intents[intent_id]
        if refunded is not None:
            intent.known_refunded = max(intent.known_refunded, min(refunded, intent.amount))
        order_ = {None: 0, "open": 1, "won": 2, "lost": 2}
        if dispute is not None and order_[dispute] > order_[intent.known_dispute]:
            intent.known_dispute = dispute
            intent.known_disputed = 0 if dispute == "won" else min(amount, intent.amount)
        order = self.users[intent.user].orders[intent.order_id]
        if order.paying_intent != intent_id:
            if order.current_intent == intent_id and not order.granted():
                order.refunded, order.disputed = intent.known_refunded, intent.known_disputed
                order.dispute = intent.known_dispute
            return
        order.refunded, order.disputed, order.dispute = (
            intent.known_refunded,
            intent.known_disputed,
            intent.known_dispute,
        )
        self._settle_returned(order)

    def _settle_returned(self, order: MOrder) -> None:
        person = self.users[order.user]
        returned = order.returned
        was_withdrawn = self._was_withdrawn(order)
        if returned != order.revoked_for:
            touched: set[str] = set()
            for lot_id, group_name, tokens in order.lot_ids():
                group = person.groups[group_name]
                lot = group.lots[lot_id]
                target = owed(tokens, returned, order.total)
                if not lot.closed:
                    delta = target - lot.revoked
                    lot.revoked = target
                    group.balance -= delta
                else:
                    self._closed_lot_change(group, lot, target)
                touched.add(group_name)
            order.revoked_for = returned
            for name in touched:
                self._reduce_holds(person, person.groups[name])
        if order.refunded >= order.total > 0 and order.status in ("paid", "expired"):
            order.status = "refunded"
            for child in order.children_status:
                order.children_status[child] = "refunded"
            self._stop_counting(order)
            for lot_id, group_name, _ in order.lot_ids():
                lot = person.groups[group_name].lots[lot_id]
                lot.closed = True  # nothing left in it: a full refund revoked all its tokens
        now_withdrawn = order.withdrawn
        if now_withdrawn != was_withdrawn:
            self._set_withdrawn(order, now_withdrawn)

    @staticmethod
    def _closed_lot_change(group: MGroup, lot: MLot, target: int) -> None:
        """A lot that closed before the money went back: taking more becomes a debt only for what it had used beyond
        what is still paid for; giving back returns what is still owed by the group (the rest would have expired
        with the lot: a closed lot comes first in burn order)."""
        kept_revoked, before = lot.revoked, lot.revoked + lot.debt
        if target >= kept_revoked:
            after = kept_revoked + max(0, target - kept_revoked - lot.expired)
            lot.debt = after - kept_revoked
        else:
            after, lot.revoked, lot.debt = target, target, 0
        back = before - after
        if back < 0:
            group.balance += back
            group.drawn -= back
        else:
            give = min(back, max(group.drawn, 0))
            group.balance += give
            group.drawn -= give

    def _was_withdrawn(self, order: MOrder) -> bool:
        person = self.users[order.user]
        state = person.groups.get(order.group)
        return state is None or order.order_id not in state.purchases

    def _set_withdrawn(self, order: MOrder, withdrawn: bool) -> None:
        person = self.users[order.user]
        purchases = [(order.order_id, order.offer_id, order.group, order.starts, order.expires)]
        purchases += [(line.child_id, line.offer_id, line.group, line.starts, line.expires) for line in order.lines]
        for purchase_id, offer_id, group, starts, expires in purchases:
            state = person.group(group)
            if withdrawn:
                state.purchases.pop(purchase_id, None)
            elif starts is not None:
                state.purchases[purchase_id] = MPurchase(purchase_id, offer_id, starts, expires)

    # --- what the API must show ------------------------------------------------------------------------------------

    def visible_offers(self, user: str) -> set[str]:
        person = self.users[user]
        active = {name for name, group in person.groups.items() if group.active(self.now)}
        return {
            offer.offer_id
            for offer in self.offers.values()
            if not offer.retired and (not offer.unlocked_by or active & set(offer.unlocked_by))
        }

    def subscribed(self, user: str, offer_id: str) -> bool:
        person = self.users[user]
        for group in person.groups.values():
            for purchase in group.purchases.values():
                if purchase.offer_id == offer_id and (purchase.expires is None or purchase.expires > self.now):
                    return True
        return False

    def expired_groups(self, user: str) -> list[str]:
        """``POST /credits/expiry-check``'s ``expired``: groups where a lot expired and nothing is left valid."""
        person = self.users[user]
        return sorted(
            name
            for name, group in person.groups.items()
            if group.expired_lots > 0 and not group.active(self.now) and not group.open_lots()
        )

    def order_status(self, user: str, order_id: str) -> str:
        person = self.users[user]
        if order_id in person.orders:
            return person.orders[order_id].status
        root = order_id.rsplit("-", 1)[0]
        return person.orders[root].children_status[order_id]
