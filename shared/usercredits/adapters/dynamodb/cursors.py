"""Opaque page cursors: a sort key (and a few numbers) in URL-safe base64, checked against the range they page."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from usercredits.errors import InvalidRequestError


def encode_cursor(sort_key: str, **fields: int) -> str:
    """An opaque cursor to the item at ``sort_key`` (``fields``: what else the list needs to go on from there)."""
    return base64.urlsafe_b64encode(json.dumps({"sk": sort_key, **fields}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    """The sort key a cursor points at; a cursor that was not made by us for this list is a 422."""
    return decode_cursor_fields(cursor, prefix)[0]


def decode_cursor_fields(cursor: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """The sort key a cursor points at and the fields it carries; a cursor not made by us for this list is a 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        fields = json.loads(base64.urlsafe_b64decode(padded.encode()))
        sort_key = fields.pop("sk")
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidRequestError("cursor is not valid") from exc
    # A sort key is at most 1,024 bytes: a longer one could only be forged, and DynamoDB would refuse it as a key.
    if not isinstance(sort_key, str) or not sort_key.startswith(prefix) or len(sort_key.encode()) > 1024:
        raise InvalidRequestError("cursor is not valid")
    return sort_key, fields


def lots_cursor(after: str, before: int, version: int) -> str:
    """The cursor to a group's lots after the lot at ``after`` (``before``: the tokens of the lots up to it, valid
    while the group is at ``version``)."""
    return encode_cursor(after, before=before, version=version)


def decode_lots_cursor(cursor: str, prefix: str) -> tuple[str, int, int]:
    after, extra = decode_cursor_fields(cursor, prefix)
    before, version = extra.get("before"), extra.get("version")
    if not isinstance(before, int) or not isinstance(version, int) or before < 0:
        raise InvalidRequestError("lotsCursor is not valid")
    return after, before, version
