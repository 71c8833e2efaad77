"""Schemathesis hooks of the e2e fuzz run (``SCHEMATHESIS_HOOKS``): request variants its generators never make,
the classes of issue 14 A2 and A3.

Every generated request with a JSON body is sent, in turn, as generated or as one variant: its media type in another
case or with parameters (still JSON: it must be read as JSON), a media type that is not JSON (the contract's 422), a
body nested deeper or holding a longer integer than a parser can represent safely (the contract's 422). Whatever the
variant, the checks of the run hold: no 5xx, and every answer matches the document.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import schemathesis
from schemathesis.core import NotSet

DEPTH = 100_000
DIGITS = 5_000

#: (Content-Type sent, body sent instead of the generated one, or None to keep it).
VARIANTS: tuple[tuple[str | None, bytes | None], ...] = (
    (None, None),
    ("APPLICATION/JSON", None),
    ("application/json; charset=UTF-8", None),
    ("Application/Json;Charset=utf-8", None),
    ("text/plain", None),
    ("application/x-www-form-urlencoded", None),
    ("application/json", b"[" * DEPTH + b"]" * DEPTH),
    ("application/json", b'{"count": ' + b"9" * DIGITS + b"}"),
    ("application/json", b'{"a": -' + b"1" * DIGITS + b"}"),
)

_turn = itertools.count()
_lock = threading.Lock()


def _next_variant() -> tuple[str | None, bytes | None]:
    with _lock:
        return VARIANTS[next(_turn) % len(VARIANTS)]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if isinstance(case.body, NotSet) or "json" not in str(case.media_type or ""):
        return
    content_type, body = _next_variant()
    if content_type is None:
        return
    case.headers = {**(case.headers or {}), "Content-Type": content_type}
    if body is not None:  # sent instead of the generated body
        kwargs["data"] = body
