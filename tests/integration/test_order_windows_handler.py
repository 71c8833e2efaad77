"""Issue 12, defect 6 through the ordering function on moto: windows that cannot be represented are 422 bodies that
name the field, and nothing is written (before: a 500 for a free order, a pending order that could never be paid)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from http import HTTPStatus as S

import pytest

from tests.integration.conftest import item_kinds

CREATE = "ordering/create_order.json"
PUT_OFFER = "ordering/put_offer_admin.json"


def refused(ordering_api, body: dict[str, object], field: str) -> dict[str, object]:
    status, response, _ = ordering_api(CREATE, body=body, headers={"idempotency-key": "far"})
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")
    assert [detail["field"] for detail in response["details"]] == [f"body.{field}"]
    return response


@pytest.mark.parametrize("offer_id", ["Free", "EnterpriseM"])
def test_far_future_starts_is_422_naming_starts_and_writes_nothing(ordering_api, credits_items, offer_id) -> None:
    response = refused(ordering_api, {"offerId": offer_id, "starts": "9999-12-01T00:00:00Z"}, "starts")
    assert str(response["message"]).startswith("starts 9999-12-01T00:00:00+00:00 is too far ahead")
    assert item_kinds(credits_items()) == []


def test_yearly_times_10000_is_422_naming_quantity_and_writes_no_order(ordering_api, credits_items) -> None:
    response = refused(ordering_api, {"offerId": "_100tokens", "quantity": 10_000}, "quantity")
    assert "within 100 years" in str(response["message"])
    assert item_kinds(credits_items()) == []


def test_custom_century_offer_ordered_twice_is_422(ordering_api, credits_items) -> None:
    offer = {
        "name": "Century",
        "offerGroup": "Century",
        "prices": [{"amount": 0, "currency": "usd"}],
        "tokens": 5,
        "cycle": "custom",
        "customCycleSeconds": 100 * 366 * 86400,
    }
    assert ordering_api(PUT_OFFER, path="/admin/offers/century", body=offer, admin=True)[0] == S.OK
    refused(ordering_api, {"offerId": "century", "quantity": 2}, "quantity")
    assert item_kinds(credits_items()) == []
    status, body, _ = ordering_api(CREATE, body={"offerId": "century"}, headers={"idempotency-key": "one"})
    assert (status, body["order"]["status"]) == (S.CREATED, "paid")  # one century fits: paid at once, stored


def test_starts_inside_the_bound_is_accepted(ordering_api) -> None:
    starts = (datetime.now(UTC) + timedelta(days=9 * 366)).isoformat()
    status, body, _ = ordering_api(CREATE, body={"offerId": "Free", "starts": starts})
    assert (status, body["order"]["status"]) == (S.CREATED, "paid")


@pytest.mark.parametrize(
    "starts",
    [
        "2030-01-01T00:00:00",  # naive: no timezone
        "tomorrow",
        "9999-12-31T23:59:59",
        "10000-01-01T00:00:00Z",
        42.5,
        2_000_000_000,  # would be read as Unix seconds (2033) by pydantic: not a date-time string
        True,
    ],
)
def test_starts_naive_or_garbage_is_422(ordering_api, credits_items, starts) -> None:
    status, response, _ = ordering_api(CREATE, body={"offerId": "Free", "starts": starts})
    assert (status, response["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")
    assert any("starts" in detail["field"] for detail in response["details"])
    assert item_kinds(credits_items()) == []


def test_starts_past_year_9999_in_utc_is_422_not_500(ordering_api, credits_items) -> None:
    # Accepted by the schema (an aware time), in year 10000 once in UTC: the domain refuses it, nothing overflows.
    refused(ordering_api, {"offerId": "Free", "starts": "9999-12-31T23:59:59-01:00"}, "starts")
    assert item_kinds(credits_items()) == []
