"""Offer visibility: the seed's loadOffers scenarios T01-T04; rules in docs/rules.md#offer-visibility."""

from typing import Any

from usercredits.domain.catalog import matches_tags, visible_offers
from usercredits.domain.models import Offer, OfferView
from usercredits.kernel.models import Money

PAID_VIP_UNLOCKERS = ["ScaleUp"]


def ids(views: list[OfferView]) -> set[str]:
    return {view.offer_id for view in views}


def test_visible_offers_anonymous_buyer_sees_public_offers_only(wonderai_offers: list[Offer]) -> None:
    views = visible_offers(wonderai_offers, paid_groups=[], currency="usd")
    assert len(views) == 17
    assert not ids(views) & {"1-article-month", "2-articles-month"}


def test_visible_offers_scaleup_buyer_sees_all_19(wonderai_offers: list[Offer]) -> None:
    # Seed T01 (19 offers) and T04 (ScaleUp unlocks the two VIP articles).
    views = visible_offers(wonderai_offers, paid_groups=PAID_VIP_UNLOCKERS, currency="usd")
    assert len(views) == 19


def test_visible_offers_startup_unlocks_nothing(wonderai_offers: list[Offer]) -> None:
    assert len(visible_offers(wonderai_offers, paid_groups=["Startup"], currency="usd")) == 17  # seed T04


def test_visible_offers_empty_tag_list_filters_nothing(wonderai_offers: list[Offer]) -> None:
    assert len(visible_offers(wonderai_offers, paid_groups=[], currency="usd", tags=[], all_tags=True)) == 17


def test_visible_offers_all_tags_subscription_monthly_gives_seven(wonderai_offers: list[Offer]) -> None:
    views = visible_offers(
        wonderai_offers, paid_groups=[], currency="usd", tags=["subscription", "monthly"], all_tags=True
    )
    assert ids(views) == {"Free", "StartupM", "EnterpriseM", "ScaleUpM", "EbStartupM", "EbEnterpriseM", "EbScaleUpM"}


def test_visible_offers_any_subscription_gives_thirteen(wonderai_offers: list[Offer]) -> None:
    assert len(visible_offers(wonderai_offers, paid_groups=[], currency="usd", tags=["subscription"])) == 13  # T03


def test_visible_offers_all_three_tags_gives_four(wonderai_offers: list[Offer]) -> None:
    views = visible_offers(
        wonderai_offers, paid_groups=[], currency="usd", tags=["subscription", "monthly", "standard"], all_tags=True
    )
    assert ids(views) == {"Free", "StartupM", "EnterpriseM", "ScaleUpM"}  # T03


def test_visible_offers_any_vip_or_earlybird_gives_eight_once_unlocked(wonderai_offers: list[Offer]) -> None:
    unlocked = visible_offers(
        wonderai_offers, paid_groups=PAID_VIP_UNLOCKERS, currency="usd", tags=["vip", "EarlyBird"]
    )
    locked = visible_offers(wonderai_offers, paid_groups=[], currency="usd", tags=["vip", "EarlyBird"])
    assert len(unlocked) == 8  # T03
    assert len(locked) == 6  # docs/rules.md#offer-visibility: tag filters never reveal locked offers


def test_visible_offers_leaves_out_offers_without_a_price_in_the_currency(wonderai_offers: list[Offer]) -> None:
    views = visible_offers(wonderai_offers, paid_groups=PAID_VIP_UNLOCKERS, currency="eur")
    assert len(views) == 17  # the VIP articles are sold in usd only
    assert all(view.price.currency == "eur" for view in views)


def offer(offer_id: str, key: str | None, weight: int = 0, unlocked_by: list[str] | None = None, **extra: Any) -> Offer:
    return Offer(
        offer_id=offer_id,
        name=offer_id,
        offer_group=f"group-{offer_id}",
        prices=[Money(amount=100, currency="usd")],
        tokens=1,
        cycle="monthly",
        overriding_key=key,
        weight=weight,
        unlocked_by=unlocked_by or [],
        **extra,
    )


def test_visible_offers_unlocked_offer_overrides_public_offer_with_same_key() -> None:
    offers = [
        offer("regular1", "k1"),
        offer("regular2", "k2"),
        offer("child1", "k1", unlocked_by=["G"]),
        offer("child2", "k3", unlocked_by=["G"]),
    ]
    # The seed's commented test: [regular2, child1, child2].
    assert [v.offer_id for v in visible_offers(offers, paid_groups=["G"], currency="usd")] == [
        "regular2",
        "child1",
        "child2",
    ]


def test_visible_offers_strictly_heavier_weight_wins_and_ties_are_deterministic() -> None:
    offers = [offer("b-light", "k", 1, ["G"]), offer("a-heavy", "k", 5, ["G"]), offer("c-heavy", "k", 5, ["G"])]
    assert [v.offer_id for v in visible_offers(offers, paid_groups=["G"], currency="usd")] == ["a-heavy"]


def test_visible_offers_keyless_offers_never_collide() -> None:
    # docs/rules.md#offer-visibility: the seed's keyless offers all collided under one "undefined" key and removed every
    # keyless public offer.
    offers = [offer("public", None), offer("u1", None, unlocked_by=["G"]), offer("u2", None, unlocked_by=["G"])]
    assert ids(visible_offers(offers, paid_groups=["G"], currency="usd")) == {"public", "u1", "u2"}


def test_visible_offers_two_empty_lists_give_nothing() -> None:
    assert visible_offers([], paid_groups=[], currency="usd") == []


def test_visible_offers_hides_retired_offers() -> None:
    assert visible_offers([offer("gone", None, retired=True)], paid_groups=[], currency="usd") == []


def test_matches_tags_any_versus_all() -> None:
    tagged = offer("t", None, tags=["a", "b"])
    assert matches_tags(tagged, ["a", "z"], all_tags=False)
    assert not matches_tags(tagged, ["a", "z"], all_tags=True)


def test_unlocked_by_and_tags_have_set_semantics() -> None:
    # Seed T05: asUnlockingOfferGroups([ABC, ABC, DEF, GHI, DEF]) gives {ABC, DEF, GHI}.
    deduped = offer("x", None, unlocked_by=["ABC", "ABC", "DEF", "GHI", "DEF"], tags=["a", "a"])
    assert (deduped.unlocked_by, deduped.tags) == (["ABC", "DEF", "GHI"], ["a"])
