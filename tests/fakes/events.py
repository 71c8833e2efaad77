"""An event publisher that records what it was given (both publishing ports: ``publish`` and ``publish_each``)."""

from __future__ import annotations

from collections.abc import Callable

from usercredits.kernel.models import DomainEvent


class RecordingEventPublisher:
    """``accepted``: the events the bus took, in order; ``rejected``: the ones ``reject(event)`` refused.

    ``failure``: every ``publish`` raises it, after taking the events when ``delivered`` (a timeout after delivery:
    consumers got them, the caller does not know) or without taking them (the bus is down).
    """

    def __init__(
        self,
        *,
        reject: Callable[[DomainEvent], bool] | None = None,
        failure: Exception | None = None,
        delivered: bool = False,
    ) -> None:
        self.accepted: list[DomainEvent] = []
        self.rejected: list[DomainEvent] = []
        self._reject = reject or (lambda event: False)
        self._failure = failure
        self._delivered = delivered

    def __len__(self) -> int:
        return len(self.accepted)

    def kinds(self) -> list[str]:
        """The detail-types accepted, in order."""
        return [event.kind for event in self.accepted]

    def details(self) -> list[dict[str, object]]:
        """The details accepted, in order."""
        return [event.detail for event in self.accepted]

    def publish(self, events: list[DomainEvent]) -> None:
        """``EventPublisher``: every event or raise."""
        if self._failure is not None:
            if self._delivered:
                self.accepted.extend(events)
            raise self._failure
        if not all(self.publish_each(events)):
            raise RuntimeError("the bus rejected some events")

    def publish_each(self, events: list[DomainEvent]) -> list[bool]:
        """``BatchPublisher``: per event, whether the bus took it."""
        results = []
        for event in events:
            taken = not self._reject(event)
            (self.accepted if taken else self.rejected).append(event)
            results.append(taken)
        return results
