"""Telling a user's app that a group ran low: a spend or a capture that crosses the group's threshold publishes
``CreditsLow`` after its write, with a backstop so the warning is never lost."""

from __future__ import annotations

import logging
from datetime import datetime

from usercredits.domain.events import crossed_low, with_detail
from usercredits.domain.models import DomainEvent, GroupPolicy
from usercredits.domain.ports import CreditsRepository, EventPublisher

logger = logging.getLogger(__name__)


def publish_if_crossed(
    user_id: str,
    policy: GroupPolicy,
    before: int,
    after: int,
    *,
    entry_id: str,
    events: EventPublisher,
    credits: CreditsRepository,
    now: datetime,
) -> None:
    """Publish ``CreditsLow`` when the movement ``entry_id`` took the balance from ``before`` across the group's
    threshold to ``after``, marked first: if the publish fails (or this Lambda dies during it) the mark stays and the
    expiry scan sends it. Nothing is written when nothing crossed."""
    crossed = crossed_low(user_id, policy.offer_group, policy.low_threshold, before, after)
    if not crossed:
        return
    offer_group = policy.offer_group
    mark = None
    try:
        mark = credits.mark_low(user_id, offer_group, now, entry_id)
    except Exception:  # noqa: BLE001 - the warning still goes out; only its backstop is missing
        logger.warning("could not mark %s as owing CreditsLow", offer_group, exc_info=True)
    # The eventId is the mark's, as the scan's resend of it would carry: a consumer that got both drops one.
    event_id = f"CreditsLow#{mark}" if mark is not None else f"CreditsLow#{entry_id}"
    if _published(events, [with_detail(event, {"eventId": event_id}) for event in crossed]) and mark is not None:
        try:
            credits.clear_low(user_id, offer_group, mark)
        except Exception:  # noqa: BLE001 - left marked: the expiry scan sends it again (a duplicate at worst)
            logger.warning("could not clear the CreditsLow mark of %s", offer_group, exc_info=True)


def _published(events: EventPublisher, published: list[DomainEvent]) -> bool:
    # The movement is already committed: a failed publish is logged, never turned into a failed spend.
    try:
        events.publish(published)
    except Exception:  # noqa: BLE001 - any publishing failure
        logger.exception("could not publish %s", [event.kind for event in published])
        return False
    return True
