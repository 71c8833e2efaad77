"""The Billing objects' common shapes: an object answer, a list (and one page of it), a missing object."""

from __future__ import annotations

from typing import Any

from devtools.stripe_sim.wire import Answer, stripe_error

Json = dict[str, Any]


def ok(body: Json) -> Answer:
    return Answer(200, dict(body))


def listing(url: str, data: list[Json]) -> Answer:
    return Answer(200, {"object": "list", "url": url, "has_more": False, "data": data})


def page(answer: Answer, starting_after: str | None, size: int) -> Answer:
    """One page of a list answer: the ``size`` objects after ``starting_after`` (from the first without it)."""
    data = answer.body["data"]
    start = next((i + 1 for i, item in enumerate(data) if item["id"] == starting_after), 0) if starting_after else 0
    return Answer(200, {**answer.body, "data": data[start : start + size], "has_more": start + size < len(data)})


def missing(kind: str, object_id: str) -> Answer:
    return stripe_error(404, "invalid_request_error", f"No such {kind}: '{object_id}'", "resource_missing", "id")


def strip_data(expand: list[str]) -> list[str]:
    return [path.removeprefix("data.") for path in expand]


def empty_address() -> Json:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
