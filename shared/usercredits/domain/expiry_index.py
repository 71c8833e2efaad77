"""What the expiry scan's index (``ByExpiry``) holds, as the scan sees it: open lots with an expiry, held holds and
groups owing a ``CreditsLow``, bucketed by the hour of their time, with keys that start with that time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from usercredits.domain.models import Lot, Reservation


def hour_of(moment: datetime) -> datetime:
    """The start of the hour bucket ``moment`` falls in (UTC)."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def bound_key(moment: datetime) -> str:
    """An index key that sorts after every key at or before ``moment`` and before every later one.

    Keys are ``<ISO-8601 UTC time>#<what>``: ``$`` sorts right after ``#``, and a time with fractional seconds sorts
    after the same second without them (``.`` after ``+``), so comparing keys compares times.
    """
    return f"{moment.astimezone(UTC).isoformat()}$"


@dataclass(frozen=True)
class IndexedLot:
    """An open lot with an expiry; ``warned``: the windows (seconds) it was warned for."""

    user_id: str
    lot: Lot
    key: str
    warned: frozenset[int] = frozenset()


@dataclass(frozen=True)
class IndexedHold:
    """A hold while it is held; due at its expiry."""

    user_id: str
    hold: Reservation
    key: str


@dataclass(frozen=True)
class LowMark:
    """A group owing a ``CreditsLow``: marked when a movement took its balance to or below its threshold, cleared once
    the warning was accepted (``balance``: the group's balance as the index shows it)."""

    user_id: str
    offer_group: str
    balance: int
    marked_at: datetime
    key: str


type IndexEntry = IndexedLot | IndexedHold | LowMark


@dataclass(frozen=True)
class IndexPage:
    """Entries of one bucket in key order; ``last_key``: read on after it (None: nothing more up to the bound)."""

    entries: list[IndexEntry]
    last_key: str | None


@dataclass(frozen=True)
class Position:
    """Where a warning window's reading stands: every bucket before ``hour`` is done, and in ``hour`` every key up to
    ``after`` (None: none of it yet)."""

    hour: datetime
    after: str | None = None


@dataclass
class ScanState:
    """The cursors a run starts from and saves: the earliest hour that may hold due work (None: first run) and each
    warning window's position."""

    due_from: datetime | None = None
    windows: dict[int, Position] = field(default_factory=dict)
