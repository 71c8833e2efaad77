"""The clock a composition root gives the domain: the real one, or the test clock of ``make run``.

``build_clock(settings)`` returns :class:`~usercredits.domain.ports.SystemClock` unless ``LOCAL_CLOCK_FILE`` is set,
in which case every function reads the same :class:`LocalClock`: a small JSON file the dev server writes when
``POST /_local/clock`` moves time (docs/api.md#local-simulation-dev-server-only), so expiry, warnings and hold lapses
can be shown without waiting. The settings refuse ``LOCAL_CLOCK_FILE`` inside AWS Lambda: a deployed stack always runs
on the real clock.

The file holds ``{"offsetSeconds": <number>}`` (the real time plus an offset: it keeps flowing) or
``{"frozenAt": "<ISO-8601>"}`` (a clock that stands still, for deterministic tests); a missing or empty file is offset
0. It is written atomically (a temporary file, then ``os.replace``), and read again only when its ``os.stat``
signature changed.

Imported by every function at cold start: the standard library and the domain's ports only.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from usercredits.kernel.clock import Clock, SystemClock

__all__ = [
    "MAX_TIME",
    "MIN_TIME",
    "ClockState",
    "LocalClock",
    "LocalClockError",
    "SystemClock",
    "advance_clock",
    "build_clock",
    "format_time",
    "freeze_clock",
    "parse_time",
    "read_clock",
    "read_state",
    "set_clock",
    "write_state",
]

#: The latest time the local clock may show: far enough from ``datetime.max`` that date arithmetic on it (now + 30
#: days, a yearly cycle, the TTL of a record) never overflows.
MAX_TIME = datetime(9000, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
#: The earliest: timestamps before the Unix epoch (TTLs, ULIDs) are not meaningful.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)

# Serialises the read-modify-write of the helpers within a process (the dev server's threads).
_WRITE_LOCK = threading.Lock()


class LocalClockError(ValueError):
    """The clock state file cannot be read, or a requested change is out of range."""


class _ClockSettings(Protocol):
    @property
    def LOCAL_CLOCK_FILE(self) -> str: ...


def build_clock(settings: _ClockSettings) -> Clock:
    """The clock of a composition root: the local test clock when ``LOCAL_CLOCK_FILE`` is set, else the real one."""
    if settings.LOCAL_CLOCK_FILE:
        return LocalClock(settings.LOCAL_CLOCK_FILE)
    return SystemClock()


@dataclass(frozen=True)
class ClockState:
    """What the state file says: a frozen time, or an offset (seconds) from the real clock."""

    offset_seconds: float = 0.0
    frozen_at: datetime | None = None

    def reading(self, real: datetime) -> datetime:
        """The local time when the real clock shows ``real``."""
        if self.frozen_at is not None:
            return self.frozen_at
        try:
            return real + timedelta(seconds=self.offset_seconds)
        except OverflowError as exc:
            raise LocalClockError(f"the local clock's offset {self.offset_seconds} s is out of range") from exc

    def as_json(self) -> dict[str, Any]:
        if self.frozen_at is not None:
            return {"frozenAt": format_time(self.frozen_at)}
        return {"offsetSeconds": self.offset_seconds}

    @classmethod
    def from_json(cls, raw: object) -> ClockState:
        if not isinstance(raw, dict) or len(raw) != 1:
            raise LocalClockError('expected {"offsetSeconds": <number>} or {"frozenAt": "<ISO-8601 time>"}')
        if "frozenAt" in raw:
            frozen = raw["frozenAt"]
            if not isinstance(frozen, str):
                raise LocalClockError("frozenAt must be an ISO-8601 time with a timezone")
            return cls(frozen_at=parse_time(frozen))
        offset = raw.get("offsetSeconds")
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
            raise LocalClockError("offsetSeconds must be a finite number")
        return cls(offset_seconds=float(offset))


class LocalClock:
    """The test clock of ``make run``: the state in ``path``, read again only when the file changed (one
    ``os.stat`` per call otherwise). Always timezone-aware UTC."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        # (stat signature, state) in one attribute: a reader in another thread sees both or neither.
        self._cached: tuple[tuple[int, int, int], ClockState] | None = None

    def now(self) -> datetime:
        return self.state().reading(datetime.now(UTC))

    def state(self) -> ClockState:
        try:
            signature = _signature(os.stat(self.path))
        except FileNotFoundError:
            return ClockState()
        cached = self._cached
        if cached is not None and cached[0] == signature:
            return cached[1]
        try:
            with open(self.path, "rb") as file:
                # The signature of what is read (the file may have been replaced since the stat above).
                signature, text = _signature(os.fstat(file.fileno())), file.read()
        except FileNotFoundError:
            return ClockState()
        state = _parse(text, self.path)
        self._cached = (signature, state)
        return state


def _signature(stat: os.stat_result) -> tuple[int, int, int]:
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


def _parse(text: bytes, path: str) -> ClockState:
    if not text.strip():
        return ClockState()
    try:
        return ClockState.from_json(json.loads(text))
    except ValueError as exc:  # LocalClockError and JSONDecodeError
        raise LocalClockError(f"invalid local clock file {path}: {exc}") from exc


# --- times ------------------------------------------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """An ISO-8601 time with a timezone (``Z`` or an offset), in UTC, within ``MIN_TIME``..``MAX_TIME``."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise LocalClockError(f"not an ISO-8601 time: {text!r}") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise LocalClockError(f"the time must have a timezone (Z or +hh:mm): {text!r}")
    try:
        return _in_range(moment.astimezone(UTC))
    except OverflowError as exc:  # e.g. 9999-12-31T23:00:00-05:00
        raise LocalClockError(f"the time must be from {format_time(MIN_TIME)} to {format_time(MAX_TIME)}") from exc


def format_time(moment: datetime) -> str:
    """ISO-8601 UTC with a ``Z`` (the contract's timestamps)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _in_range(moment: datetime) -> datetime:
    if not MIN_TIME <= moment <= MAX_TIME:
        raise LocalClockError(f"the time must be from {format_time(MIN_TIME)} to {format_time(MAX_TIME)}")
    return moment


# --- writing the state (the dev server, tests) -----------------------------------------------------------------------


def read_state(path: str | os.PathLike[str]) -> ClockState:
    """The state in ``path`` (offset 0 when the file is missing or empty)."""
    return LocalClock(path).state()


def read_clock(path: str | os.PathLike[str]) -> datetime:
    """What the clock of ``path`` shows now."""
    return LocalClock(path).now()


def write_state(path: str | os.PathLike[str], state: ClockState) -> None:
    """Replace the state atomically (a temporary file in the same directory, then ``os.replace``).

    The new file's mtime is made later than the old one's even within the filesystem's timestamp granularity, so a
    reader comparing ``os.stat`` signatures always notices the change (a new file may reuse a freed inode).
    """
    import tempfile

    target = os.fspath(path)
    try:
        previous_ns: int | None = os.stat(target).st_mtime_ns
    except FileNotFoundError:
        previous_ns = None
    directory, name = os.path.split(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(state.as_json(), file)
        if previous_ns is not None:
            written_ns = os.stat(temporary).st_mtime_ns
            if written_ns <= previous_ns:
                os.utime(temporary, ns=(previous_ns + 1, previous_ns + 1))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def advance_clock(path: str | os.PathLike[str], seconds: float) -> datetime:
    """Move the clock ``seconds`` (>= 0) forward (a frozen clock stays frozen); return what it shows now."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds < 0:
        raise LocalClockError("advanceSeconds must be a finite number >= 0 (the clock only moves forward)")
    with _WRITE_LOCK:
        state, real = read_state(path), datetime.now(UTC)
        try:
            moved = state.reading(real) + timedelta(seconds=seconds)
        except OverflowError as exc:
            raise LocalClockError(f"the clock cannot move past {format_time(MAX_TIME)}") from exc
        if moved > MAX_TIME:
            raise LocalClockError(f"the clock cannot move past {format_time(MAX_TIME)}")
        if state.frozen_at is not None:
            write_state(path, ClockState(frozen_at=moved))
        else:
            write_state(path, ClockState(offset_seconds=state.offset_seconds + seconds))
    return read_clock(path)


def set_clock(path: str | os.PathLike[str], when: datetime) -> datetime:
    """Make the clock show ``when`` (timezone-aware) now, then flow with the real time; return what it shows."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise LocalClockError("the time must be timezone-aware")
    when = _in_range(when.astimezone(UTC))
    with _WRITE_LOCK:
        write_state(path, ClockState(offset_seconds=(when - datetime.now(UTC)).total_seconds()))
    return read_clock(path)


def freeze_clock(path: str | os.PathLike[str], at: datetime | None = None) -> datetime:
    """Stop the clock at ``at`` (timezone-aware; default: what it shows now); return it."""
    with _WRITE_LOCK:
        if at is None:
            at = read_clock(path)
        elif at.tzinfo is None or at.utcoffset() is None:
            raise LocalClockError("the time must be timezone-aware")
        at = _in_range(at.astimezone(UTC))
        write_state(path, ClockState(frozen_at=at))
    return at
