"""Bundle size at the edge, through the ordering function on moto (issue 16, item 1): the admin PUT refuses a bundle
past ``MAX_BUNDLE_ITEMS`` (422 naming ``combinedItems``), an offer stored with more before the limit still lists but
cannot be ordered (409, before any payment intent, nothing written), and no transaction of more than DynamoDB's 100
actions is ever sent (moto 5.2.5 itself refuses one of 101 actions, as DynamoDB does, but not one over 4 MB)."""

from __future__ import annotations

from http import HTTPStatus as S
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.integration.conftest import item_kinds
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.adapters.dynamodb.credits_table import OutboxItem
from usercredits.adapters.dynamodb.keys import user_pk
from usercredits.adapters.dynamodb.transactions import IdempotentTransaction, TransactionTooLargeError
from usercredits.domain.models import MAX_BUNDLE_ITEMS, CombinedOffer, Offer
from usercredits.kernel.clock import SystemClock
from usercredits.kernel.models import Cycle, Money
from usercredits.kernel.writes import MAX_TRANSACTION_ACTIONS

PUT_OFFER = "ordering/put_offer_admin.json"
CREATE = "ordering/create_order.json"
LIST = "ordering/list_offers.json"
GET_OFFER = "ordering/get_offer.json"


def bundle_body(items: int, *, price: int = 0) -> dict[str, Any]:
    return {
        "name": "Big bundle",
        "offerGroup": "BigRoot",
        "prices": [{"amount": price, "currency": "usd"}],
        "tokens": 10,
        "cycle": "monthly",
        "combinedItems": [{"offerId": "_20tokens", "offerGroup": f"Big-{i}", "quantity": 1} for i in range(items)],
    }


def test_the_admin_put_takes_the_maximum_bundle(ordering_api) -> None:
    status, saved, _ = ordering_api(PUT_OFFER, path="/admin/offers/big", body=bundle_body(MAX_BUNDLE_ITEMS), admin=True)
    assert (status, len(saved["combinedItems"])) == (S.OK, MAX_BUNDLE_ITEMS)


def test_the_admin_put_refuses_one_item_past_the_maximum_naming_combined_items(ordering_api) -> None:
    body = bundle_body(MAX_BUNDLE_ITEMS + 1)
    status, response, _ = ordering_api(PUT_OFFER, path="/admin/offers/big", body=body, admin=True)
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")
    assert [detail["field"] for detail in response["details"]] == ["body.combinedItems"]
    assert str(MAX_BUNDLE_ITEMS) in response["details"][0]["message"]
    assert ordering_api(GET_OFFER, path="/offers/big")[0] == S.NOT_FOUND


def store_unchecked(offer_id: str, items: int, *, price: int) -> None:
    """An offer written before the limit: stored as it was (the repository writes what it is given)."""
    offer = Offer.model_construct(
        offer_id=offer_id,
        name=offer_id,
        kind="tokens",
        offer_group=f"{offer_id}-root",
        prices=[Money(amount=price, currency="usd")],
        tokens=10,
        cycle=Cycle.MONTHLY,
        combined_items=[CombinedOffer(offer_id="_20tokens", offer_group=f"{offer_id}-{i}") for i in range(items)],
    )
    DynamoCatalogRepository(cache_seconds=0).put_offer(offer, SystemClock().now())


@pytest.mark.parametrize("price", [0, 900])
def test_an_order_of_a_stored_offer_past_the_maximum_is_409_with_nothing_written(
    ordering_api, credits_items, price: int
) -> None:
    store_unchecked("OldBig", MAX_BUNDLE_ITEMS + 1, price=price)
    status, response, _ = ordering_api(CREATE, body={"offerId": "OldBig"}, headers={"idempotency-key": "old"})
    assert (status, response["error"]) == (S.CONFLICT, "conflict")
    assert f"bundles {MAX_BUNDLE_ITEMS + 1} items, more than the {MAX_BUNDLE_ITEMS}" in response["message"]
    assert item_kinds(credits_items()) == []  # no order, no intent link, no idempotency record
    # It still lists (reads do not validate stored offers again), so an admin can see and fix it.
    status, listed, _ = ordering_api(LIST, query={})
    assert status == S.OK and "OldBig" in {offer["offerId"] for offer in listed["offers"]}
    assert ordering_api(GET_OFFER, path="/offers/OldBig")[0] == S.OK


def test_the_maximum_bundle_is_paid_at_once_when_free(ordering_api, credits_items) -> None:
    ordering_api(PUT_OFFER, path="/admin/offers/big", body=bundle_body(MAX_BUNDLE_ITEMS), admin=True)
    status, placed, _ = ordering_api(CREATE, body={"offerId": "big"}, headers={"idempotency-key": "big"})
    assert (status, placed["order"]["status"]) == (S.CREATED, "paid")
    kinds = item_kinds(credits_items())
    assert (kinds.count("lot"), kinds.count("creditGroup"), kinds.count("order")) == (1 + MAX_BUNDLE_ITEMS,) * 3


def test_moto_refuses_101_actions_and_the_guard_never_sends_them(moto_tables: None) -> None:
    client = boto3.client("dynamodb")
    table = OutboxItem.Meta.table_name
    puts = [{"Put": {"TableName": table, "Item": {"pk": {"S": "x"}, "sk": {"S": f"s{i}"}}}} for i in range(101)]
    with pytest.raises(ClientError, match="length less than or equal to 100"):
        client.transact_write_items(TransactItems=puts)

    now = SystemClock().now()
    with pytest.raises(TransactionTooLargeError) as refused, IdempotentTransaction("guard", None) as transaction:
        for index in range(MAX_TRANSACTION_ACTIONS + 1):
            transaction.save(OutboxItem(pk=user_pk("guard"), sk=f"OUTBOX#{index:03d}", events=[], created_at=now))
    assert refused.value.actions == MAX_TRANSACTION_ACTIONS + 1
    assert client.scan(TableName=table)["Count"] == 0
