"""Ordering use cases against in-memory fakes (seed T07-T13, T21, T22; rules in docs/rules.md#credits-half)."""

from datetime import timedelta

import pytest

from tests.fakes.catalog import InMemoryCatalogRepository
from tests.fakes.clock import FixedClock
from tests.fakes.orders import InMemoryOrderRepository
from tests.fakes.payments import RecordingPaymentGateway
from tests.helpers.present import present
from usercredits.domain import offers, order_reads, ordering, payments
from usercredits.domain.models import Offer, OrderStatus
from usercredits.errors import ConflictError, ForbiddenError, InvalidRequestError, NotFoundError
from usercredits.kernel.models import Caller, Money


@pytest.fixture
def place(
    catalog: InMemoryCatalogRepository,
    orders: InMemoryOrderRepository,
    payments: RecordingPaymentGateway,
    clock: FixedClock,
):
    def _place(offer_id: str, quantity: int = 1, user: str = "alice", **kwargs: object) -> ordering.PlacedOrder:
        command = ordering.PlaceOrder(offer_id, quantity, **kwargs)  # type: ignore[arg-type]
        return ordering.place_order(
            command,
            Caller(user_id=user),
            default_currency="usd",
            catalog=catalog,
            orders=orders,
            payments=payments,
            clock=clock,
        )

    return _place


def test_place_order_total_is_price_times_quantity_in_minor_units(place, payments) -> None:
    # Seed T07 + T12: EnterpriseM x 3 -> 3 x 99.00 usd, and an intent for exactly that amount.
    placed = place("EnterpriseM", 3)
    assert placed.order.total == Money(amount=29700, currency="usd")
    assert placed.order.status is OrderStatus.PENDING
    assert payments.requests == [(placed.order.order_id, 1, 29700, "usd")]
    assert placed.payment is not None and placed.payment.payment_intent_id == placed.order.payment_intent_id
    assert placed.payment.client_secret


def test_place_order_default_quantity_is_one(place) -> None:
    placed = place("EnterpriseM")
    assert (placed.order.quantity, placed.order.total.amount) == (1, 9900)


def test_place_order_quantity_over_limit_is_a_conflict_and_writes_nothing(place, orders) -> None:
    with pytest.raises(ConflictError, match="Requested quantity exceeds the limit"):  # seed T08
        place("Free", 2)
    assert len(orders) == 0


def test_place_order_keeps_unit_and_total_tokens_apart(place) -> None:
    # Seed T09 / docs/rules.md#bundles: tokenCount changed meaning when paid; now unitTokens and totalTokens are both
    # kept.
    order = place("_100tokens", 3).order
    assert (order.unit_tokens, order.total_tokens, order.cycle.value) == (100, 300, "yearly")


def test_place_order_stores_the_bundle_breakdown(place, orders) -> None:
    # Seed T10 / docs/rules.md#bundles: the breakdown is persisted, multiplied by the root quantity.
    order = place("ScaleUpM", 2).order
    stored = orders.get_order("alice", order.order_id)
    assert [(line.offer_id, line.offer_group, line.quantity, line.total_tokens) for line in stored.combined_items] == [
        ("_700tokens", "AiTokens", 2, 1400),
        ("1-article-month", "VIP_BACK_LINK", 4, 4),
    ]


def test_place_order_free_offer_is_paid_at_once_with_its_bundle(place, orders, payments, clock) -> None:
    order = place("Free").order
    assert order.status is OrderStatus.PAID and payments.requests == []
    assert order.expires == order.starts + (clock.now().replace(month=2, day=28) - clock.now())
    windows = orders.group_states("alice")
    assert set(windows) == {"Free", "AiTokens"}
    child = orders.get_order("alice", order.combined_items[0].child_order_id)
    assert child.parent_order_id == order.order_id and child.status is OrderStatus.PAID


def test_place_order_locked_offer_is_forbidden_until_unlocked(place, orders, catalog, clock) -> None:
    with pytest.raises(ForbiddenError):
        place("1-article-month")
    # A paid ScaleUp purchase unlocks the VIP articles (docs/rules.md#offer-visibility: the unlock check is enforced on
    # orders).
    scaleup = place("ScaleUpM").order
    payments.apply_order_paid("alice", scaleup.order_id, orders=orders, clock=clock, message="paid")
    assert place("1-article-month").order.status is OrderStatus.PENDING


def test_place_order_expired_purchase_no_longer_unlocks(place, orders, clock) -> None:
    scaleup = place("ScaleUpM").order
    payments.apply_order_paid("alice", scaleup.order_id, orders=orders, clock=clock, message="paid")
    clock.advance(days=40)
    with pytest.raises(ForbiddenError):  # docs/rules.md#expiry: expired purchases no longer unlock offers
        place("1-article-month")


@pytest.mark.parametrize(
    ("offer_id", "kwargs", "error"),
    [
        ("nope", {}, NotFoundError),
        ("1-article-month", {"currency": "eur"}, InvalidRequestError),  # not sold in eur
    ],
)
def test_place_order_refuses_unknown_offer_or_currency(place, offer_id, kwargs, error) -> None:
    with pytest.raises(error):
        place(offer_id, **kwargs)


def test_place_order_retired_offer_is_not_found(place, catalog, clock) -> None:
    offers.retire_offer("_20tokens", catalog=catalog, clock=clock)
    with pytest.raises(NotFoundError):
        place("_20tokens")


def test_place_order_explicit_past_start_is_refused(place, clock) -> None:
    with pytest.raises(InvalidRequestError, match="Explicit start date has passed"):  # seed T13
        place("StartupM", starts=clock.now() - timedelta(seconds=1))


def test_place_order_prices_in_the_requested_currency(place) -> None:
    assert place("StartupM", 2, currency="eur").order.total == Money(amount=9800, currency="eur")


def test_place_order_idempotency_key_replays_the_first_order(place, orders, payments) -> None:
    first = place("EnterpriseM", 2, idempotency_key="k-1")
    again = place("EnterpriseM", 2, idempotency_key="k-1")
    assert again.order == first.order and again.payment == first.payment
    assert len(orders) == 1


def test_place_order_idempotency_key_with_other_body_is_a_conflict(place) -> None:
    place("EnterpriseM", 2, idempotency_key="k-1")
    with pytest.raises(ConflictError, match="Idempotency-Key"):
        place("EnterpriseM", 3, idempotency_key="k-1")


def test_idempotency_keys_are_per_user(place, orders) -> None:
    place("EnterpriseM", idempotency_key="same", user="alice")
    place("EnterpriseM", idempotency_key="same", user="bob")
    assert len(orders) == 2


def test_apply_order_paid_twice_settles_once(place, orders, clock) -> None:
    # Seed T21 / docs/rules.md#payment-outcomes: "already paid" looked at the caller's copy; now the stored status
    # decides.
    order = place("EbEnterpriseY").order
    first = payments.apply_order_paid("alice", order.order_id, orders=orders, clock=clock, message="paid")
    second = payments.apply_order_paid("alice", order.order_id, orders=orders, clock=clock, message="paid")
    assert first == second
    assert orders.group_states("alice")["EbEnterprise"].paid_orders == 1
    # Seed T22: EbEnterpriseY grants 150 x 12 per unit; its bundle 28 x 300 AiTokens.
    assert first.total_tokens == 1800
    assert [(line.offer_group, line.total_tokens) for line in first.combined_items] == [
        ("AiTokens", 8400),
        ("VIP_BACK_LINK", 24),
    ]


def test_apply_order_paid_survives_offer_retirement(place, orders, catalog, clock) -> None:
    # Seed T21 raised "Offer with id ... in order ..." when the offer was gone; the order's copy now suffices.
    order = place("ScaleUpY").order
    for offer_id in ("ScaleUpY", "_700tokens", "1-article-month"):
        offers.retire_offer(offer_id, catalog=catalog, clock=clock)
    paid = payments.apply_order_paid("alice", order.order_id, orders=orders, clock=clock, message="paid")
    assert paid.status is OrderStatus.PAID and len(paid.combined_items) == 2


def test_appended_purchases_chain_their_windows(place, orders, clock) -> None:
    first = place("StartupM").order
    first = payments.apply_order_paid("alice", first.order_id, orders=orders, clock=clock, message="paid")
    second = place("StartupY").order
    second = payments.apply_order_paid("alice", second.order_id, orders=orders, clock=clock, message="paid")
    assert second.starts == first.expires
    assert orders.group_states("alice")["Startup"].expires == second.expires


def test_request_payment_creates_a_fresh_intent_for_a_pending_order(place, orders, payments, clock) -> None:
    order = place("EnterpriseM").order
    retried = ordering.request_payment(
        order.order_id, Caller(user_id="alice"), idempotency_key=None, orders=orders, payments=payments, clock=clock
    )
    assert retried.order.payment_attempt == 2
    assert present(retried.payment).payment_intent_id != order.payment_intent_id


def test_payment_attempts_are_bounded_so_the_order_item_stays_writable(place, orders, payments, clock) -> None:
    order = place("EnterpriseM").order
    alice = Caller(user_id="alice")

    def attempt(key: str | None = None) -> ordering.PlacedOrder:
        return ordering.request_payment(
            order.order_id, alice, idempotency_key=key, orders=orders, payments=payments, clock=clock
        )

    for _ in range(ordering.MAX_PAYMENT_ATTEMPTS - 2):
        attempt()
    last = attempt("last")  # the 25th
    assert last.order.payment_attempt == ordering.MAX_PAYMENT_ATTEMPTS
    with pytest.raises(ConflictError, match="25 payment attempts already: place a new order"):
        attempt()
    # A retry of the last attempt still answers it (its key was recorded), and nothing was written by the refusal
    assert present(attempt("last").payment).payment_intent_id == present(last.payment).payment_intent_id
    assert orders.get_order("alice", order.order_id).payment_attempt == ordering.MAX_PAYMENT_ATTEMPTS


def test_request_payment_on_a_paid_order_is_a_conflict(place, orders, payments, clock) -> None:
    order = place("Free").order
    with pytest.raises(ConflictError, match="not pending"):  # the seed's payOrder worked on paid orders
        ordering.request_payment(
            order.order_id, Caller(user_id="alice"), idempotency_key=None, orders=orders, payments=payments, clock=clock
        )


def test_request_payment_replays_with_the_same_key(place, orders, payments, clock) -> None:
    order = place("EnterpriseM").order
    alice = Caller(user_id="alice")
    first = ordering.request_payment(
        order.order_id, alice, idempotency_key="p1", orders=orders, payments=payments, clock=clock
    )
    again = ordering.request_payment(
        order.order_id, alice, idempotency_key="p1", orders=orders, payments=payments, clock=clock
    )
    assert again.payment == first.payment and again.order.payment_attempt == 2


def test_orders_of_another_user_are_not_found(place, orders) -> None:
    order = place("EnterpriseM").order
    with pytest.raises(NotFoundError):
        order_reads.get_order(order.order_id, Caller(user_id="mallory"), orders=orders)


def test_get_subscription_reports_paid_unexpired_orders_only(place, orders, clock) -> None:
    alice = Caller(user_id="alice")
    assert not order_reads.get_subscription("Free", alice, orders=orders, clock=clock).subscribed
    order = place("Free").order
    found = order_reads.get_subscription("Free", alice, orders=orders, clock=clock)
    assert (found.subscribed, found.order_id, found.expires) == (True, order.order_id, order.expires)
    clock.advance(days=40)
    assert not order_reads.get_subscription("Free", alice, orders=orders, clock=clock).subscribed


def test_list_offers_reflects_the_callers_paid_groups(catalog, orders, clock, place) -> None:
    alice = Caller(user_id="alice")
    before = offers.list_offers(
        alice, currency="usd", tags=[], all_tags=False, catalog=catalog, orders=orders, clock=clock
    )
    scaleup = place("ScaleUpM").order
    payments.apply_order_paid("alice", scaleup.order_id, orders=orders, clock=clock, message="paid")
    after = offers.list_offers(
        alice, currency="usd", tags=[], all_tags=False, catalog=catalog, orders=orders, clock=clock
    )
    assert (len(before), len(after)) == (17, 19)


def test_upsert_offer_replaces_terms(catalog, clock, wonderai_offers) -> None:
    changed = wonderai_offers[0].model_copy(update={"tokens": 25})
    offers.upsert_offer(changed, catalog=catalog, clock=clock)
    assert offers.get_offer(changed.offer_id, catalog=catalog).tokens == 25


def test_retire_unknown_offer_is_not_found(catalog, clock) -> None:
    with pytest.raises(NotFoundError):
        offers.retire_offer("nope", catalog=catalog, clock=clock)


def test_offer_terms_validation_rejects_duplicate_currencies() -> None:
    with pytest.raises(ValueError, match="one price per currency"):
        Offer(
            offer_id="x",
            name="x",
            offer_group="g",
            tokens=1,
            cycle="monthly",
            prices=[Money(amount=1, currency="usd"), Money(amount=2, currency="usd")],
        )


def test_offer_terms_validation_requires_custom_seconds() -> None:
    with pytest.raises(ValueError, match="customCycleSeconds"):
        Offer(
            offer_id="x", name="x", offer_group="g", tokens=1, cycle="custom", prices=[Money(amount=1, currency="usd")]
        )


def test_money_rejects_unknown_currency() -> None:
    with pytest.raises(ValueError, match="unknown currency"):
        Money(amount=1, currency="xxx")
