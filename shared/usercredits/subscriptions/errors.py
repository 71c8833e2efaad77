"""Errors of the subscriptions half, as subclasses of the domain errors so ``usercredits.http`` maps them already."""

from __future__ import annotations

from usercredits.errors import ConflictError, InvalidRequestError


class CouponError(InvalidRequestError):
    """A promotion code cannot be used: its message is one of the seed's (``coupons.INVALID`` and siblings)."""


class PaymentInProgressError(ConflictError):
    """Another payment operation holds the customer's soft lock (the seed's TransactionError)."""

    def __init__(self) -> None:
        super().__init__("Another payment operation is already in progress")
