"""The edge's input rules as pure functions (the handler-level tests are in tests/integration/test_hostile_input.py)."""

from __future__ import annotations

import pytest

from usercredits.errors import InvalidRequestError
from usercredits.http_input import (
    MAX_JSON_DEPTH,
    decoded_path_parameters,
    is_json_media_type,
    parse_json_body,
    routable_path,
)


@pytest.mark.parametrize(
    ("media_type", "json"),
    [
        ("application/json", True),
        ("APPLICATION/JSON", True),
        ("application/json; charset=UTF-8", True),
        (" Application/Json ;charset=utf-8", True),
        ("application/merge-patch+json", True),
        ("application/jsonx", False),
        ("text/json-ish", False),
        ("text/plain", False),
        ("multipart/form-data", False),
    ],
)
def test_json_media_types(media_type: str, json: bool) -> None:
    assert is_json_media_type(media_type) is json


def test_a_decoded_path_is_encoded_again_to_route_and_an_encoded_one_is_kept() -> None:
    assert routable_path("/admin/users/auth0|abc/grants") == "/admin/users/auth0%7Cabc/grants"
    assert routable_path("/admin/users/auth0%7Cabc/grants") == "/admin/users/auth0%7Cabc/grants"
    assert routable_path("/admin/users/a+b@x.com/credits") == "/admin/users/a+b@x.com/credits"
    assert routable_path("/admin/users/😀 #1/credits") == "/admin/users/%F0%9F%98%80%20%231/credits"


def test_path_parameters_are_decoded_exactly_once() -> None:
    # API Gateway's own pathParameters are already decoded: taken as they are
    assert decoded_path_parameters({"userId": "100%2541"}, {"userId": "100%41"}) == {"userId": "100%41"}
    # Without them, the matched (encoded) text is decoded once
    assert decoded_path_parameters({"userId": "100%2541"}, None) == {"userId": "100%41"}
    assert decoded_path_parameters({"userId": "auth0%7Cabc"}, {}) == {"userId": "auth0|abc"}


def test_json_within_the_limits_parses() -> None:
    nested = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert parse_json_body(nested) is not None
    assert parse_json_body('{"count": 1000000000000, "x": -5}') == {"count": 10**12, "x": -5}


@pytest.mark.parametrize(
    "body",
    [
        "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
        "[" * 200_000 + "]" * 200_000,
        '{"count": ' + "9" * 5_000 + "}",
        '{"count": -' + "9" * 65 + "}",
    ],
)
def test_json_a_parser_cannot_hold_safely_is_an_invalid_request(body: str) -> None:
    with pytest.raises(InvalidRequestError):
        parse_json_body(body)
