"""The per-user expiry check (the seed's checkForExpiredOrders, done right): close what is due, then warn."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from usercredits.domain.credits import CreditGroup, credit_group
from usercredits.domain.lapses import expire_group
from usercredits.domain.ports import CatalogRepository, CreditsRepository
from usercredits.kernel.clock import Clock
from usercredits.kernel.models import DomainModel


class Warning(DomainModel):  # noqa: A001 - the API's name
    """A group expiring soon, or at or below its minimum (the API's ``Warning``)."""

    offer_group: str
    kind: Literal["expiring", "low"]
    balance: int
    expires: datetime | None = None
    min: int | None = None


@dataclass(frozen=True)
class ExpiryReport:
    expired: list[CreditGroup]
    warnings: list[Warning]


def check_expiry(
    user_id: str,
    *,
    warn_before_seconds: int,
    low: dict[str, int],
    credits: CreditsRepository,
    clock: Clock,
    catalog: CatalogRepository,
) -> ExpiryReport:
    """Close the user's lots that are due, then report.

    Lots past their expiry lose exactly their unused tokens (one ``expire`` movement each, once, even when called
    twice or concurrently) and their orders move to ``expired``; ``expired`` lists the groups in which lots expired
    (whoever closed them: this call, a read, a spend or the scheduled scan) and nothing valid is left: no open lot
    and no paid window still running (the seed listed the groups whose window had ended). Warnings: ``expiring``
    for a group whose soonest open lot with tokens left expires within ``warn_before_seconds``; ``low`` for each
    group of ``low`` whose balance is at or below its minimum (zero and groups never bought included).
    """
    now = clock.now()
    before = credits.snapshot(user_id)
    due = sorted({lot.offer_group for lot in before.lots if lot.expires is not None and lot.expires <= now})
    for offer_group in due:
        expire_group(user_id, offer_group, credits=credits, clock=clock, catalog=catalog)
    snapshot = credits.snapshot(user_id) if due else before
    views = {group: credit_group(state, snapshot.lots) for group, state in snapshot.groups.items()}
    warnings: list[Warning] = []
    horizon = now + timedelta(seconds=warn_before_seconds)
    for group, view in sorted(views.items()):
        soonest = min((lot.expires for lot in view.lots if lot.remaining > 0 and lot.expires), default=None)
        if soonest is not None and soonest <= horizon:
            warnings.append(Warning(offer_group=group, kind="expiring", balance=view.balance, expires=soonest))
    for group, minimum in sorted(low.items()):
        balance = views[group].balance if group in views else 0
        if balance <= minimum:
            warnings.append(Warning(offer_group=group, kind="low", balance=balance, min=minimum))
    expired = [
        views[group]
        for group, state in sorted(snapshot.groups.items())
        if state.expired_lots > 0 and not state.active_at(now) and not views[group].lots
    ]
    return ExpiryReport(expired=expired, warnings=warnings)
