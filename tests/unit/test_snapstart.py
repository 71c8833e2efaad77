"""SnapStart hooks: the priming registered with the runtime's hook library, and what a restore resets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import snapshot_restore_py  # type: ignore[import-untyped]

from usercredits import snapstart
from usercredits.kernel.ids import new_ulid

NOW = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture
def hooks() -> Iterator[tuple[list[object], list[object]]]:
    before, after = snapshot_restore_py.get_before_snapshot(), snapshot_restore_py.get_after_restore()
    saved = (list(before), list(after))
    before.clear()
    after.clear()
    yield before, after
    before[:], after[:] = saved


def test_priming_is_registered_for_the_snapshot_and_builds_what_a_first_request_would(hooks) -> None:
    built: list[str] = []
    assert snapstart.prime_before_snapshot(
        lambda: built.append("root"), tables=[], modules=["json"], openapi=lambda: built.append("openapi")
    )
    before, after = hooks
    assert built == []  # nothing at import: only when the runtime snapshots
    (prime, args, kwargs), (restore, *_) = before[0], after[0]
    prime(*args, **kwargs)
    assert built == ["root", "openapi"]
    assert restore is snapstart.after_restore


def test_after_a_restore_ids_do_not_continue_the_snapshot_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    # Environments restored from one snapshot share its memory. Within the snapshot's millisecond the monotonic
    # generator would answer "the snapshot's last id + 1" in every one of them, whatever their random bits: the same
    # id twice. After the reset an id is made of the time and fresh random bits only.
    monkeypatch.setattr(os, "urandom", lambda size: b"\xff" * size)
    before_snapshot = new_ulid(NOW)
    snapstart.after_restore()
    monkeypatch.setattr(os, "urandom", bytes)  # this environment's own random bits
    restored = new_ulid(NOW)
    assert restored != _next(before_snapshot)
    assert restored == new_ulid_of(NOW, 0)


def _next(ulid: str) -> str:
    return _encode(_decode(ulid) + 1)


def new_ulid_of(now: datetime, random_part: int) -> str:
    return _encode((int(now.timestamp() * 1000) << 80) | random_part)


_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _decode(ulid: str) -> int:
    value = 0
    for char in ulid:
        value = value * 32 + _ALPHABET.index(char)
    return value


def _encode(value: int) -> str:
    chars = []
    for _ in range(26):
        value, index = divmod(value, 32)
        chars.append(_ALPHABET[index])
    return "".join(reversed(chars))
