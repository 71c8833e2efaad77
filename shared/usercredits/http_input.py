"""What the HTTP edge accepts before a route runs: JSON media types, JSON a parser can represent, path parameters
decoded exactly once, and identifiers within DynamoDB's key limits (docs/api.md#limits-and-media-types).

Every check here answers the contract's 4xx error body; none reaches DynamoDB, so none can become a ``503`` that never
goes away (DynamoDB refuses a key attribute above its limit with a ``ValidationException``).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from pydantic import AfterValidator, Field

from usercredits.errors import InvalidRequestError

#: A user id (the JWT ``sub``, or an admin route's ``{userId}``) reaches partition keys (``USER#``, ``CUSTOMER#``)
#: and the ``ByExpiry`` index's sort key (``<time>#<userId>#<offerGroup>#<lotId>``, at most 1,024 bytes), and Stripe
#: metadata (500 characters): 256 bytes of UTF-8 hold every identity provider's subjects (e-mail addresses included).
MAX_USER_ID_BYTES = 256
#: An idempotency key reaches the sort key ``IDEMPOTENCY#<scope>#<key>`` (at most 1,024 bytes). The contract allows
#: 255 characters; 255 characters outside ASCII are up to 1,020 bytes, so the bytes are bounded too.
MAX_IDEMPOTENCY_KEY_CHARS = 255
MAX_IDEMPOTENCY_KEY_BYTES = 512
#: JSON bodies: no route's body nests deeper than 4 levels or needs integers of more than 13 digits.
MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 64
#: Characters a percent-encoded path may hold literally (RFC 3986 ``pchar`` and ``/``, ``%`` kept as is).
_PATH_CHARACTERS = "/%-._~!$&'()*+,;=:@"


def max_utf8_bytes(limit: int, what: str) -> AfterValidator:
    """A pydantic check that a string (or ``None``) is at most ``limit`` bytes of UTF-8."""

    def check(value: str | None) -> str | None:
        if value is not None and len(value.encode("utf-8")) > limit:
            raise ValueError(f"{what} must be at most {limit} bytes of UTF-8 (non-ASCII characters take 2 to 4)")
        return value

    return AfterValidator(check)


#: An admin route's ``{userId}`` (any JWT subject).
UserPath = Annotated[str, Path(min_length=1, max_length=MAX_USER_ID_BYTES), max_utf8_bytes(MAX_USER_ID_BYTES, "userId")]
#: An idempotency key given in a body (``idempotencyKey``).
IdempotencyKey = Annotated[
    str,
    Field(min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS),
    max_utf8_bytes(MAX_IDEMPOTENCY_KEY_BYTES, "idempotencyKey"),
]
#: The contract's ``Idempotency-Key`` header.
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(alias="idempotency-key", min_length=1, max_length=MAX_IDEMPOTENCY_KEY_CHARS),
    max_utf8_bytes(MAX_IDEMPOTENCY_KEY_BYTES, "Idempotency-Key"),
]


def check_user_id(user_id: str) -> str:
    """``user_id`` when it fits the keys it reaches; a ``validation_error`` naming ``sub`` otherwise."""
    size = len(user_id.encode("utf-8"))
    if size > MAX_USER_ID_BYTES:
        raise InvalidRequestError(
            f"the token's subject (sub) is {size} bytes of UTF-8; this API stores user ids of at most "
            f"{MAX_USER_ID_BYTES} bytes",
            details=[{"field": "sub", "message": f"at most {MAX_USER_ID_BYTES} bytes", "type": "too_long"}],
        )
    return user_id


# ------------------------------------------------------------------------------------------------------- JSON bodies
def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``application/<anything>+json``, in any case, with or without parameters."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _bounded_int(text: str) -> int:
    # Python refuses to convert integers above 4,300 digits (a ValueError, not a JSON error); none of ours needs 64.
    if len(text.lstrip("-")) > MAX_JSON_INT_DIGITS:
        raise InvalidRequestError(f"the body holds an integer of more than {MAX_JSON_INT_DIGITS} digits")
    return int(text)


def _depth(value: Any) -> int:
    """How deep ``value`` nests (iterative: the check must not be the recursion it guards against)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def parse_json_body(text: str) -> Any:
    """The body as JSON (Powertools' ``json_body_deserializer``): a body nested deeper than ``MAX_JSON_DEPTH`` or
    holding an integer longer than ``MAX_JSON_INT_DIGITS`` is a ``validation_error``, never a 500."""
    too_deep = InvalidRequestError(f"the body nests JSON deeper than {MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(text, parse_int=_bounded_int)
    except RecursionError:
        raise too_deep from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise too_deep
    return value


# ------------------------------------------------------------------------------------------------ path parameters
def routable_path(raw_path: str) -> str:
    """The path to route on, percent-encoded: API Gateway HTTP APIs hand the function a decoded ``rawPath``
    (``/admin/users/auth0|abc/grants``); the characters a path cannot hold literally are encoded again, so any value
    routes (an encoded path is left as it is: ``%`` is kept)."""
    return urllib.parse.quote(raw_path, safe=_PATH_CHARACTERS)


def decoded_path_parameters(matched: Mapping[str, str], given: Mapping[str, str] | None) -> dict[str, str]:
    """The route's parameters, decoded exactly once: API Gateway's own ``pathParameters`` (it decoded them) when the
    event has them, else the values matched in the path, percent-decoded."""
    if given and matched.keys() <= given.keys():
        return {name: given[name] for name in matched}
    return {name: urllib.parse.unquote(value) for name, value in matched.items()}


class HttpApiResolver(APIGatewayHttpResolver):
    """Powertools' HTTP API resolver for this JSON API: request validation on, bodies parsed by
    :func:`parse_json_body`, path parameters decoded exactly once (:func:`decoded_path_parameters`)."""

    def __init__(self) -> None:
        super().__init__(enable_validation=True, json_body_deserializer=parse_json_body)

    def _convert_matches_into_route_keys(self, match: Any) -> dict[str, str]:
        # Powertools matches on the path and passes the matched text as it is (still percent-encoded).
        return decoded_path_parameters(match.groupdict(), self.current_event.get("pathParameters"))
