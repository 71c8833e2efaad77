"""Request bodies of the customers function (its part of the HTTP contract; the responses are in ``responses``)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import AwareDatetime, Field, model_validator

from usercredits.kernel.models import DomainModel, Identifier, Money
from usercredits.subscriptions.models import (
    AddressFields,
    CouponKind,
    CustomerName,
    Descriptor,
    Email,
    ProfileFields,
    TrialUnit,
)


class UpdateCustomerRequest(ProfileFields):
    """``PUT /customer``: name and email (validated, lowercased), phone and metadata optional."""

    name: CustomerName
    email: Email


class AddAddressRequest(AddressFields):
    name: str = Field(min_length=1, max_length=200)
    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2 (case-insensitive)")
    postal_code: str = Field(min_length=1, max_length=20)


class AddPaymentMethodRequest(DomainModel):
    token: str = Field(min_length=1, max_length=255, description="A Stripe pm_... id (or a local-provider token)")
    billing_address_id: Identifier | None = None
    make_default: bool = True


class DefaultPaymentMethodRequest(DomainModel):
    """One of ``paymentMethodId`` (an existing payment method) or ``token`` (a processor payment method, with the
    seed's reuse rules); ``address``, optional, goes to the default's billing address."""

    payment_method_id: Identifier | None = None
    token: str | None = Field(
        default=None, min_length=1, max_length=255, description="A Stripe pm_... id (or a local-provider token)"
    )
    address: AddressFields | None = None

    @model_validator(mode="after")
    def _one_way(self) -> DefaultPaymentMethodRequest:
        if (self.payment_method_id is None) == (self.token is None):
            raise ValueError("give exactly one of paymentMethodId and token")
        return self


class SubscribeRequest(DomainModel):
    plan_id: Identifier
    payment_method_id: Identifier | None = None
    coupon_code: Identifier | None = None
    trial: bool = Field(default=True, description="Take the plan's trial when it has one (first subscription to it)")
    descriptor: Descriptor | None = Field(default=None, description="The card-statement descriptor (name, phone, url)")


class CancelSubscriptionRequest(DomainModel):
    at_period_end: bool = False


class SubscriptionPaymentMethodRequest(DomainModel):
    payment_method_id: Identifier


class LocalSubscriptionRequest(DomainModel):
    plan_id: Identifier
    trial: bool = Field(default=False, description="Give the plan's trial (the plan must have trial terms)")


class PutPlanRequest(DomainModel):
    plan_id: Identifier | None = Field(default=None, description="Optional; must equal the path's planId")
    name: str = Field(min_length=1, max_length=200)
    price: Money
    billing_frequency_months: int = Field(default=1, ge=1, le=120, strict=True)
    level: int = Field(default=1, ge=0, le=1000, strict=True)
    processor_plan_id: str | None = Field(default=None, min_length=1, max_length=255)
    grace_period_days: int | None = Field(default=None, ge=0, le=365, strict=True)
    trial_duration: int | None = Field(default=None, ge=1, le=730, strict=True)
    trial_duration_unit: TrialUnit | None = None

    @model_validator(mode="after")
    def _trial_terms_together(self) -> PutPlanRequest:
        if (self.trial_duration is None) != (self.trial_duration_unit is None):
            raise ValueError("trialDuration and trialDurationUnit go together")
        return self


class PutCouponRequest(DomainModel):
    """A coupon's terms: an ``amount`` or a ``percent`` (by ``kind``); the use count is the system's own."""

    code: Identifier | None = Field(default=None, description="Optional; must equal the path's code")
    kind: CouponKind
    name: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=1000)
    amount: Money | None = None
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    number_of_billing_cycles: int = Field(default=1, ge=1, le=120, strict=True)
    start_at: AwareDatetime | None = None
    expire_at: AwareDatetime | None = None
    max_uses: int | None = Field(default=None, ge=1, strict=True)
    restricted: bool = False


class RefundRequest(DomainModel):
    """``amount`` absent: refund what is left of the charge."""

    amount: Money | None = None


__all__ = [
    "AddAddressRequest",
    "AddPaymentMethodRequest",
    "CancelSubscriptionRequest",
    "DefaultPaymentMethodRequest",
    "PutCouponRequest",
    "PutPlanRequest",
    "RefundRequest",
    "SubscribeRequest",
    "UpdateCustomerRequest",
]
