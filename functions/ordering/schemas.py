"""Request and response bodies of the ordering function (its part of the HTTP contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field, field_validator

from usercredits.domain.models import MAX_ORDER_QUANTITY, Offer, OfferTerms, OfferView, Order, PaymentIntent
from usercredits.kernel.models import Currency, DomainModel, Identifier


class CreateOrderRequest(DomainModel):
    offer_id: Identifier
    quantity: int = Field(default=1, ge=1, le=MAX_ORDER_QUANTITY, strict=True)
    currency: Currency | None = None
    starts: AwareDatetime | None = Field(default=None, description="Optional explicit start, in the future")

    @field_validator("starts", mode="before")
    @classmethod
    def _a_date_time_string(cls, value: object) -> object:
        # Any aware time is accepted here (how far ahead is the domain's rule: place_order), but only written as an
        # ISO 8601 string: pydantic would otherwise read a number as Unix seconds or milliseconds, guessed by size.
        if isinstance(value, int | float):  # bool included
            raise ValueError("starts must be an ISO 8601 date-time with a timezone, e.g. 2030-01-01T00:00:00Z")
        return value


class PutOfferRequest(OfferTerms):
    offer_id: Identifier | None = Field(default=None, description="Optional; must equal the path's offerId")
    retired: bool = False


class PutGroupPolicyRequest(DomainModel):
    offer_group: Identifier | None = Field(default=None, description="Optional; must equal the path's offerGroup")
    overdraft: Literal["none", "limited", "unlimited"] = "none"
    overdraft_limit: int = Field(default=0, ge=0, le=10**12, strict=True)
    low_threshold: int | None = Field(default=None, ge=0, le=10**12, strict=True)


class OffersResponse(DomainModel):
    offers: list[OfferView]


class AllOffersResponse(DomainModel):
    offers: list[Offer]


class OrderWithPayment(DomainModel):
    order: Order
    payment: PaymentIntent | None


class OrdersResponse(DomainModel):
    orders: list[Order]
    next_cursor: str | None


class SubscriptionResponse(DomainModel):
    subscribed: bool
    order_id: str | None
    expires: datetime | None


__all__ = [
    "AllOffersResponse",
    "Offer",
    "OffersResponse",
    "OrderWithPayment",
    "OrdersResponse",
    "PutGroupPolicyRequest",
    "PutOfferRequest",
    "SubscriptionResponse",
]
