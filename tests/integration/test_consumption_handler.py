"""The consumption function end to end on moto: credits, spending, the ledger and grants."""

from __future__ import annotations

import uuid
from http import HTTPStatus as S

import pytest

from tests.helpers.request_paths import RequestPath
from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
from usercredits.domain.models import GroupPolicy

CREDITS = "consumption/get_credits.json"
GROUP = "consumption/get_credit_group.json"
CONSUME = "consumption/consume.json"
LEDGER = "consumption/get_ledger.json"
GRANT = "consumption/admin_grant.json"
ADMIN_CREDITS = "consumption/admin_get_user_credits.json"
ADMIN_CONSUME = "consumption/admin_consume.json"


def consume(api, group: str, count, key: str | None = None, user: str = "alice", **kw):
    body = {"count": count} | ({"idempotencyKey": key} if key else {})
    return api(CONSUME, path=f"/credits/{group}/consume", body=body, user=user, **kw)


def grant(api, user: str, group: str, tokens: int, **extra):
    body = {"offerGroup": group, "tokens": tokens, "reason": "test"} | extra
    key = {"idempotency-key": f"grant-{uuid.uuid4()}"}  # the sample event's own key would make it one grant
    return api(GRANT, path=f"/admin/users/{user}/grants", body=body, admin=True, headers=key)


def test_free_order_grants_its_lots_and_credits_show_them(ordering_api, consumption_api) -> None:
    # Given a paid (free) bundle order
    order = ordering_api("ordering/create_order.json", body={"offerId": "Free"})[1]["order"]
    # When the user reads their credits
    status, body, _ = consumption_api(CREDITS)
    # Then one lot per purchase is in its group, with start, expiry and tokens
    assert status == S.OK
    groups = {group["offerGroup"]: group for group in body["groups"]}
    assert (groups["Free"]["balance"], groups["AiTokens"]["balance"]) == (10, 20)
    lot = groups["Free"]["lots"][0]
    assert (lot["orderId"], lot["tokens"], lot["remaining"]) == (order["orderId"], 10, 10)
    assert (lot["starts"], lot["expires"]) == (order["starts"], order["expires"])


def test_consume_spends_and_reports_the_new_balance(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 30)
    status, body, _ = consume(consumption_api, "AiTokens", 12)
    assert status == S.OK
    assert (body["offerGroup"], body["consumed"], body["balance"]) == ("AiTokens", 12, 18)
    _, group, _ = consumption_api(GROUP, path="/credits/AiTokens")
    assert (group["balance"], group["available"], group["lots"][0]["remaining"]) == (18, 18, 18)


def test_consume_not_covered_is_402_and_changes_nothing(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 5)
    status, body, _ = consume(consumption_api, "AiTokens", 6)
    assert (status, body["error"]) == (S.PAYMENT_REQUIRED, "insufficient_credits")
    _, group, _ = consumption_api(GROUP, path="/credits/AiTokens")
    assert group["balance"] == 5
    _, ledger, _ = consumption_api(LEDGER, query={})
    assert [entry["kind"] for entry in ledger["entries"]] == ["grant"]


def test_consume_from_a_group_never_bought_follows_the_policy(consumption_api) -> None:
    assert consume(consumption_api, "Postpaid", 3)[0] == S.PAYMENT_REQUIRED
    DynamoCatalogRepository().put_group_policy(GroupPolicy(offer_group="Postpaid", overdraft="unlimited"))
    from consumption import handler

    handler.dependencies.cache_clear()  # the catalog is cached per container
    status, body, _ = consume(consumption_api, "Postpaid", 3)
    assert (status, body["balance"]) == (S.OK, -3)


def test_limited_overdraft_stops_at_the_limit(consumption_api) -> None:
    DynamoCatalogRepository().put_group_policy(GroupPolicy(offer_group="Calls", overdraft="limited", overdraft_limit=4))
    grant(consumption_api, "alice", "Calls", 2)
    assert consume(consumption_api, "Calls", 6)[1]["balance"] == -4
    assert consume(consumption_api, "Calls", 1)[0] == S.PAYMENT_REQUIRED


def test_consume_idempotency_key_spends_once(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    first = consume(consumption_api, "AiTokens", 4, key="job-1")
    again = consume(consumption_api, "AiTokens", 4, key="job-1")
    header = consumption_api(
        CONSUME, path="/credits/AiTokens/consume", body={"count": 4}, headers={"idempotency-key": "job-1"}
    )
    assert first[1] == again[1] == header[1] and first[1]["balance"] == 6
    conflict = consume(consumption_api, "AiTokens", 5, key="job-1")
    assert (conflict[0], conflict[1]["error"]) == (S.CONFLICT, "conflict")
    assert consumption_api(GROUP, path="/credits/AiTokens")[1]["balance"] == 6


def test_body_and_header_keys_must_agree(consumption_api) -> None:
    status, _, _ = consumption_api(
        CONSUME,
        path="/credits/AiTokens/consume",
        body={"count": 1, "idempotencyKey": "a"},
        headers={"idempotency-key": "b"},
    )
    assert status == S.UNPROCESSABLE_ENTITY


@pytest.mark.parametrize("count", [0, -1, 1.5, "1", True, None, 10**13])
def test_consume_count_must_be_a_positive_integer(consumption_api, count) -> None:
    status, body, _ = consume(consumption_api, "AiTokens", count)
    assert (status, body["error"]) == (S.UNPROCESSABLE_ENTITY, "validation_error")


@pytest.mark.parametrize("path", ["/credits/bad%20group/consume", "/credits/" + "g" * 129 + "/consume"])
def test_consume_bad_group_is_422(consumption_api, path: str) -> None:
    assert consumption_api(CONSUME, path=path, body={"count": 1})[0] in (S.UNPROCESSABLE_ENTITY, S.NOT_FOUND)


def test_oversized_idempotency_key_is_422(consumption_api) -> None:
    assert consume(consumption_api, "AiTokens", 1, key="k" * 256)[0] == S.UNPROCESSABLE_ENTITY


def test_group_never_bought_reads_as_zero(consumption_api) -> None:
    status, body, _ = consumption_api(GROUP, path="/credits/Nothing")
    assert (status, body["balance"], body["available"], body["lots"]) == (S.OK, 0, 0, [])


def test_ledger_newest_first_with_balance_after_and_pages(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    grant(consumption_api, "alice", "Calls", 5)
    for count in (1, 2, 3):
        consume(consumption_api, "AiTokens", count)
    _, page1, _ = consumption_api(LEDGER, query={"limit": "3"})
    _, page2, _ = consumption_api(LEDGER, query={"limit": "3", "cursor": page1["nextCursor"]})
    entries = page1["entries"] + page2["entries"]
    assert page2["nextCursor"] is None
    assert [(e["kind"], e["offerGroup"], e["tokens"], e["balanceAfter"]) for e in entries] == [
        ("consume", "AiTokens", -3, 4),
        ("consume", "AiTokens", -2, 7),
        ("consume", "AiTokens", -1, 9),
        ("grant", "Calls", 5, 5),
        ("grant", "AiTokens", 10, 10),
    ]
    _, only_calls, _ = consumption_api(LEDGER, query={"offerGroup": "Calls"})
    assert [e["tokens"] for e in only_calls["entries"]] == [5]


def test_users_only_see_their_own_credits(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    _, mallory, _ = consumption_api(CREDITS, user="mallory")
    assert mallory["groups"] == []
    assert consume(consumption_api, "AiTokens", 1, user="mallory")[0] == S.PAYMENT_REQUIRED


def test_admin_routes(consumption_api) -> None:
    status, entry, _ = grant(consumption_api, "bob", "AiTokens", 50, expires="2099-01-01T00:00:00Z")
    assert (status, entry["kind"], entry["tokens"], entry["balanceAfter"], entry["reason"]) == (
        S.CREATED,
        "grant",
        50,
        50,
        "test",
    )
    status, body, _ = consumption_api(
        ADMIN_CONSUME, path="/admin/users/bob/credits/AiTokens/consume", body={"count": 5}, admin=True
    )
    assert (status, body["balance"]) == (S.OK, 45)
    status, body, _ = consumption_api(ADMIN_CREDITS, path="/admin/users/bob/credits", admin=True)
    assert (status, body["groups"][0]["balance"]) == (S.OK, 45)
    for base, path, body in [
        (GRANT, "/admin/users/bob/grants", {"offerGroup": "G", "tokens": 1, "reason": "x"}),
        (ADMIN_CREDITS, "/admin/users/bob/credits", None),
        (ADMIN_CONSUME, "/admin/users/bob/credits/G/consume", {"count": 1}),
    ]:
        assert consumption_api(base, path=path, body=body, admin=False)[0] == S.FORBIDDEN


@pytest.mark.parametrize(
    "extra",
    [
        {"tokens": 0},
        {"tokens": -5},
        {"expires": "2001-01-01T00:00:00Z"},
        {"expires": "2099-01-01T00:00:00"},
        {"reason": ""},
    ],
)
def test_admin_grant_bad_input_is_422(consumption_api, extra) -> None:
    body = {"offerGroup": "AiTokens", "tokens": 5, "reason": "test"} | extra
    assert consumption_api(GRANT, path="/admin/users/bob/grants", body=body, admin=True)[0] == S.UNPROCESSABLE_ENTITY


HOLD = "consumption/create_reservation.json"
CAPTURE = "consumption/capture_reservation.json"
RELEASE = "consumption/release_reservation.json"


def hold(api, group: str, count, **kw):
    kw.setdefault("headers", {"idempotency-key": f"hold-{uuid.uuid4()}"})  # the sample event carries a fixed key
    return api(HOLD, path=f"/credits/{group}/reservations", body={"count": count} | kw.pop("extra", {}), **kw)


def test_hold_then_partial_capture_returns_the_rest(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    status, reservation, _ = hold(consumption_api, "AiTokens", 6)
    assert (status, reservation["status"], reservation["count"]) == (S.CREATED, "held", 6)
    group = consumption_api(GROUP, path="/credits/AiTokens")[1]
    assert (group["balance"], group["held"], group["available"]) == (10, 6, 4)
    rid = reservation["reservationId"]
    status, captured, _ = consumption_api(CAPTURE, path=f"/reservations/{rid}/capture", body={"count": 4})
    assert (status, captured["status"], captured["captured"]) == (S.OK, "captured", 4)
    again = consumption_api(CAPTURE, path=f"/reservations/{rid}/capture", body={"count": 4})
    assert again[1] == captured  # idempotent
    group = consumption_api(GROUP, path="/credits/AiTokens")[1]
    assert (group["balance"], group["held"], group["available"]) == (6, 0, 6)
    kinds = [(e["kind"], e["tokens"], e["held"]) for e in consumption_api(LEDGER, query={})[1]["entries"]]
    assert kinds == [("capture", -4, -6), ("hold", 0, 6), ("grant", 10, 0)]


def test_hold_release_gives_everything_back(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    rid = hold(consumption_api, "AiTokens", 10)[1]["reservationId"]
    assert consume(consumption_api, "AiTokens", 1)[0] == S.PAYMENT_REQUIRED  # all of it is held
    status, released, _ = consumption_api(RELEASE, path=f"/reservations/{rid}/release")
    assert (status, released["status"]) == (S.OK, "released")
    assert consumption_api(RELEASE, path=f"/reservations/{rid}/release")[1] == released
    assert consumption_api(CAPTURE, path=f"/reservations/{rid}/capture", body={})[0] == S.CONFLICT
    assert consumption_api(GROUP, path="/credits/AiTokens")[1]["available"] == 10


def test_holds_never_overcommit(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    assert hold(consumption_api, "AiTokens", 7)[0] == S.CREATED
    status, body, _ = hold(consumption_api, "AiTokens", 4)
    assert (status, body["error"]) == (S.PAYMENT_REQUIRED, "insufficient_credits"), body


def test_capture_default_is_the_whole_hold_and_more_is_422(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    rid = hold(consumption_api, "AiTokens", 3)[1]["reservationId"]
    assert consumption_api(CAPTURE, path=f"/reservations/{rid}/capture", body={"count": 4})[0] == 422
    status, body, _ = consumption_api(CAPTURE, path=f"/reservations/{rid}/capture", body={})
    assert (status, body["captured"]) == (S.OK, 3)


def test_reservation_of_another_user_is_404(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    rid = hold(consumption_api, "AiTokens", 3)[1]["reservationId"]
    assert consumption_api(RELEASE, path=f"/reservations/{rid}/release", user="mallory")[0] == S.NOT_FOUND
    assert consumption_api(RELEASE, path="/reservations/not-an-id/release")[0] == S.UNPROCESSABLE_ENTITY


def test_hold_idempotency_key_holds_once(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    first = hold(consumption_api, "AiTokens", 4, headers={"idempotency-key": "h1"})
    again = hold(consumption_api, "AiTokens", 4, headers={"idempotency-key": "h1"})
    assert first[1] == again[1]
    assert consumption_api(GROUP, path="/credits/AiTokens")[1]["held"] == 4


@pytest.mark.parametrize(
    "extra", [{"count": 0}, {"count": "3"}, {"expiresInSeconds": 0}, {"expiresInSeconds": 8 * 86400}]
)
def test_hold_bad_input_is_422(consumption_api, extra) -> None:
    body = {"count": 3} | extra
    assert hold(consumption_api, "AiTokens", body.pop("count"), extra=body)[0] == S.UNPROCESSABLE_ENTITY


def test_expiry_check_route(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 3)
    body = {"warnBeforeSeconds": 60, "low": [{"offerGroup": "AiTokens", "min": 5}]}
    status, report, _ = consumption_api("consumption/expiry_check.json", body=body)
    assert status == S.OK
    assert report == {
        "expired": [],
        "warnings": [{"offerGroup": "AiTokens", "kind": "low", "balance": 3, "expires": None, "min": 5}],
    }
    assert consumption_api("consumption/expiry_check.json", body={"warnBeforeSeconds": -1})[0] == 422


def test_usage_route_sums_spends_in_a_window(consumption_api) -> None:
    grant(consumption_api, "alice", "AiTokens", 10)
    consume(consumption_api, "AiTokens", 3)
    consume(consumption_api, "AiTokens", 2)
    status, body, _ = consumption_api("consumption/get_usage.json", query={"from": "2000-01-01T00:00:00Z"})
    assert (status, body) == (S.OK, {"groups": [{"offerGroup": "AiTokens", "tokens": -5}]})
    _, everything, _ = consumption_api(
        "consumption/get_usage.json", query={"from": "2000-01-01T00:00:00Z", "spentOnly": "false"}
    )
    assert everything["groups"][0]["tokens"] == 5
    assert consumption_api("consumption/get_usage.json", query={"from": "yesterday"})[0] == S.UNPROCESSABLE_ENTITY
    assert consumption_api("consumption/get_usage.json", query={})[0] == S.UNPROCESSABLE_ENTITY


def test_request_path_of_a_spend(consumption_api) -> None:
    """The README's measure: a spend is followed through at most 5 project files, one direction."""
    grant(consumption_api, "alice", "AiTokens", 30)
    consume(consumption_api, "AiTokens", 1)  # warm: the composition root and the catalog cache are built
    with RequestPath() as path:
        status, _, _ = consume(consumption_api, "AiTokens", 2)
    assert status == S.OK
    print(path.report("POST /credits/{offerGroup}/consume"))
    assert len(path.chain) <= 5, path.chain
    assert len(path.followed) <= 5, path.followed
    assert path.back_and_forth == []
