"""Time-ordered identifiers (ULID layout: 48-bit milliseconds + 80 random bits, Crockford base32)."""

from __future__ import annotations

import os
import threading
from datetime import datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = 0


def new_ulid(now: datetime) -> str:
    """A 26-character id that sorts by creation time (so DynamoDB range keys list newest last).

    Monotonic within a process (the ULID spec's monotonic mode): two ids made in the same millisecond, or with a
    clock that did not move, still sort in the order they were made.
    """
    global _last  # noqa: PLW0603 - one counter per process, guarded by the lock
    candidate = (int(now.timestamp() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    with _lock:
        value = candidate if candidate >> 80 > _last >> 80 else _last + 1
        _last = value
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))


def forget_last() -> None:
    """Start the monotonic sequence afresh (after a SnapStart restore, environments restored from one snapshot would
    otherwise continue the same sequence)."""
    global _last  # noqa: PLW0603 - see new_ulid
    with _lock:
        _last = 0
