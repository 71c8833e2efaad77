"""Payment instruments and their display fields: cards, wallets (PayPal, Apple Pay, Android Pay, Venmo) and other types.

The original library models them as discriminators of PaymentMethod and Transaction; here they are one
tagged union used by both.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field

from usercredits.kernel.models import DomainModel


class PaymentMethodKind(StrEnum):
    CARD = "card"
    PAYPAL = "paypal"
    APPLE_PAY = "apple_pay"
    ANDROID_PAY = "android_pay"
    VENMO = "venmo"
    OTHER = "other"


class CardDetails(DomainModel):
    kind: Literal[PaymentMethodKind.CARD] = PaymentMethodKind.CARD
    brand: str | None = None
    last4: str | None = None
    masked_number: str | None = None  # "bin******last4" when the processor gives the bin
    cardholder_name: str | None = None
    expiration_month: int | None = Field(default=None, ge=1, le=12)
    expiration_year: int | None = None
    country_of_issuance: str | None = None
    issuing_bank: str | None = None


class PayPalDetails(DomainModel):
    kind: Literal[PaymentMethodKind.PAYPAL] = PaymentMethodKind.PAYPAL
    email: str | None = None
    name: str | None = None
    payer_id: str | None = None
    country_code: str | None = None


class ApplePayDetails(DomainModel):
    kind: Literal[PaymentMethodKind.APPLE_PAY] = PaymentMethodKind.APPLE_PAY
    payment_instrument_name: str | None = None
    card_type: str | None = None
    last4: str | None = None
    expiration_month: int | None = Field(default=None, ge=1, le=12)
    expiration_year: int | None = None


class AndroidPayDetails(DomainModel):
    kind: Literal[PaymentMethodKind.ANDROID_PAY] = PaymentMethodKind.ANDROID_PAY
    source_card_last4: str | None = None
    virtual_card_last4: str | None = None
    source_card_type: str | None = None
    virtual_card_type: str | None = None
    expiration_month: int | None = Field(default=None, ge=1, le=12)
    expiration_year: int | None = None


class VenmoDetails(DomainModel):
    kind: Literal[PaymentMethodKind.VENMO] = PaymentMethodKind.VENMO
    username: str | None = None
    venmo_user_id: str | None = None


class OtherDetails(DomainModel):
    """Any other processor type (SEPA debit, bank account...): its processor type name and a display label."""

    kind: Literal[PaymentMethodKind.OTHER] = PaymentMethodKind.OTHER
    processor_type: str
    label: str | None = None


#: The display fields of an instrument, by kind (a payment method's, or the one a transaction was paid with).
InstrumentDetails = Annotated[
    CardDetails | PayPalDetails | ApplePayDetails | AndroidPayDetails | VenmoDetails | OtherDetails,
    Field(discriminator="kind"),
]
