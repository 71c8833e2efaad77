"""Stripe customers, payment methods, addresses, charges and refunds <-> the subscriptions half's values (subscriptions
and their discounts: ``subscription_mapping``): pure functions reading Stripe's shape (``to_dict()``), current API
first and the pre-2025 field names as a fallback.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from usercredits.kernel.models import Money
from usercredits.subscriptions.instruments import (
    AndroidPayDetails,
    ApplePayDetails,
    CardDetails,
    InstrumentDetails,
    OtherDetails,
    PaymentMethodKind,
    PayPalDetails,
)
from usercredits.subscriptions.models import (
    AddressFields,
    Customer,
    ProcessorItem,
    ProcessorState,
    Transaction,
    TransactionCustomer,
    TransactionDiscount,
    TransactionKind,
    TransactionStatus,
    TransactionStatusEvent,
)
from usercredits.subscriptions.ports import (
    ProcessorCustomer,
    ProcessorPaymentMethod,
)

Json = dict[str, Any]

#: Stripe refund statuses → local transaction statuses.
REFUND_STATUSES: Mapping[str, TransactionStatus] = {
    "succeeded": TransactionStatus.SETTLED,
    "pending": TransactionStatus.SETTLING,
    "requires_action": TransactionStatus.SETTLEMENT_PENDING,
    "failed": TransactionStatus.FAILED,
    "canceled": TransactionStatus.VOIDED,
}


def processor_customer(values: Any) -> ProcessorCustomer:
    data: Json = values if isinstance(values, dict) else values.to_dict()
    settings = data.get("invoice_settings") or {}
    return ProcessorCustomer(
        id=str(data["id"]),
        name=str(data.get("name") or ""),
        email=data.get("email") or None,
        phone=data.get("phone") or None,
        metadata={str(key): str(value) for key, value in (data.get("metadata") or {}).items()},
        default_payment_method_id=id_of(settings.get("default_payment_method")),
        deleted=bool(data.get("deleted")),
    )


def processor_payment_method(data: Mapping[str, Any]) -> ProcessorPaymentMethod:
    """A Stripe PaymentMethod: its kind (cards in an Apple Pay or Google Pay wallet are those wallets), display
    fields, owner and billing details."""
    kind, details = instrument(data)
    return ProcessorPaymentMethod(
        id=str(data["id"]),
        kind=kind,
        details=details,
        customer_id=id_of(data.get("customer")),
        billing=billing_fields(data.get("billing_details")),
    )


def instrument(data: Mapping[str, Any]) -> tuple[PaymentMethodKind, InstrumentDetails]:
    """The kind and display fields of a PaymentMethod, or of a charge's ``payment_method_details``."""
    kind = str(data.get("type") or "")
    name = (data.get("billing_details") or {}).get("name")
    if kind in {"card", "card_present"}:
        card = data.get(kind) or {}
        wallet = str((card.get("wallet") or {}).get("type") or "")
        months = {"expiration_month": card.get("exp_month"), "expiration_year": card.get("exp_year")}
        if wallet == "apple_pay":
            return PaymentMethodKind.APPLE_PAY, ApplePayDetails(
                payment_instrument_name=f"{card.get('brand') or 'card'} {card.get('last4') or ''}".strip(),
                card_type=card.get("brand"),
                last4=card.get("last4"),
                **months,
            )
        if wallet in {"google_pay", "android_pay"}:
            return PaymentMethodKind.ANDROID_PAY, AndroidPayDetails(
                source_card_type=card.get("brand"),
                source_card_last4=card.get("last4"),
                virtual_card_last4=(card.get("wallet") or {}).get("dynamic_last4"),
                **months,
            )
        iin, last4 = card.get("iin"), card.get("last4")
        return PaymentMethodKind.CARD, CardDetails(
            brand=card.get("brand"),
            last4=last4,
            masked_number=f"{iin}******{last4}" if iin and last4 else None,
            cardholder_name=name,
            country_of_issuance=card.get("country"),
            issuing_bank=card.get("issuer"),
            **months,
        )
    if kind == "paypal":
        paypal = data.get("paypal") or {}
        return PaymentMethodKind.PAYPAL, PayPalDetails(
            email=paypal.get("payer_email"),
            name=paypal.get("payer_name") or name,
            payer_id=paypal.get("payer_id"),
            country_code=paypal.get("country"),
        )
    return PaymentMethodKind.OTHER, OtherDetails(processor_type=kind or "unknown", label=name)


def billing_fields(details: Mapping[str, Any] | None) -> AddressFields | None:
    """Stripe ``billing_details`` as an address, or None when it says nothing."""
    if not details:
        return None
    address = details.get("address") or {}
    fields = AddressFields(
        name=details.get("name") or None,
        phone=details.get("phone") or None,
        country=address.get("country") or None,
        locality=address.get("city") or None,
        street_address=address.get("line1") or None,
        extended_address=address.get("line2") or None,
        postal_code=address.get("postal_code") or None,
    )
    return None if fields == AddressFields() else fields


def billing_details(address: AddressFields) -> Json:
    """An address as Stripe ``billing_details`` (empty strings unset fields; company has no place there)."""
    return {
        "name": address.name or "",
        "phone": address.phone or "",
        "address": {
            "country": address.country or "",
            "city": address.locality or "",
            "line1": address.street_address or "",
            "line2": address.extended_address or "",
            "postal_code": address.postal_code or "",
        },
    }


def charge_transaction(
    charge: Mapping[str, Any],
    *,
    invoice: Mapping[str, Any] | None = None,
    customer: ProcessorCustomer | None = None,
    coupon_names: Mapping[str, str] | None = None,
) -> Transaction:
    """A Stripe Charge as a sale transaction (its processor id is also its local id until merged)."""
    status = charge_status(charge)
    created = time_of(charge.get("created")) or datetime.now(UTC)
    currency = str(charge.get("currency") or "usd")
    details = charge.get("payment_method_details") or {}
    instrument_details = instrument(details)[1] if details.get("type") else None
    parent = (invoice or {}).get("parent") or {}
    subscription_details = parent.get("subscription_details") or {}
    names = coupon_names or {}
    period_start, period_end = _invoice_period(invoice) if invoice else (None, None)
    return Transaction(
        transaction_id=str(charge["id"]),
        processor=ProcessorItem(id=str(charge["id"]), state=ProcessorState.SAVED),
        kind=TransactionKind.SALE,
        amount=Money(amount=int(charge.get("amount") or 0), currency=currency),
        status=status,
        status_history=[TransactionStatusEvent(status=status, timestamp=created)],
        subscription_id=(subscription_details.get("metadata") or {}).get("subscriptionId"),
        plan_processor_id=_invoice_price(invoice) if invoice else None,
        period_start=period_start,
        period_end=period_end,
        billing=billing_fields(charge.get("billing_details")),
        customer=TransactionCustomer(name=customer.name or None, email=customer.email, phone=customer.phone)
        if customer
        else None,
        discounts=[
            TransactionDiscount(
                amount=Money(amount=int(entry.get("amount") or 0), currency=currency),
                name=names.get(str(id_of(entry.get("discount"))), ""),
            )
            for entry in (invoice or {}).get("total_discount_amounts") or []
        ],
        instrument=instrument_details,
        created_at=created,
    )


def charge_status(charge: Mapping[str, Any]) -> TransactionStatus:
    """succeeded and captured → settled; uncaptured → authorized (voided once released); pending → settling;
    failed → processor_declined; a charge voided by a full ``metadata.void`` refund → voided."""
    status = str(charge.get("status") or "")
    if status == "failed":
        return TransactionStatus.PROCESSOR_DECLINED
    if status == "pending":
        return TransactionStatus.SETTLING
    if not charge.get("captured"):
        return TransactionStatus.VOIDED if charge.get("refunded") else TransactionStatus.AUTHORIZED
    voids = [r for r in list_data(charge.get("refunds")) if (r.get("metadata") or {}).get("void")]
    return TransactionStatus.VOIDED if voids else TransactionStatus.SETTLED


def refund_transaction(refund: Mapping[str, Any]) -> Transaction:
    """A Stripe Refund as a refund transaction; ``refunded_transaction_id`` is the charge's processor id."""
    status = REFUND_STATUSES.get(str(refund.get("status") or ""), TransactionStatus.SETTLING)
    created = time_of(refund.get("created")) or datetime.now(UTC)
    return Transaction(
        transaction_id=str(refund["id"]),
        processor=ProcessorItem(id=str(refund["id"]), state=ProcessorState.SAVED),
        kind=TransactionKind.REFUND,
        amount=Money(amount=int(refund.get("amount") or 0), currency=str(refund.get("currency") or "usd")),
        status=status,
        status_history=[TransactionStatusEvent(status=status, timestamp=created)],
        refunded_transaction_id=id_of(refund.get("charge")),
        created_at=created,
    )


def list_data(value: Any) -> list[Json]:
    if isinstance(value, dict):
        return [item for item in value.get("data") or [] if isinstance(item, dict)]
    return [item for item in value or [] if isinstance(item, dict)]


def invoices_by_charge(invoices: Iterable[Json]) -> dict[str, Json]:
    """Invoices by the charge (and the payment intent) that paid them."""
    found: dict[str, Json] = {}
    for invoice in invoices:
        for entry in list_data(invoice.get("payments")):
            payment = entry.get("payment") or {}
            for key in ("charge", "payment_intent"):
                if (value := id_of(payment.get(key))) is not None:
                    found[value] = invoice
        for key in ("charge", "payment_intent"):  # API versions before 2025-03-31
            if (value := id_of(invoice.get(key))) is not None:
                found[value] = invoice
    return found


def _invoice_price(invoice: Mapping[str, Any]) -> str | None:
    for line in list_data(invoice.get("lines")):
        details = (line.get("pricing") or {}).get("price_details") or {}
        price = id_of(details.get("price")) or id_of(line.get("price"))
        if price:
            return price
    return None


def _invoice_period(invoice: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    """The billing period a subscription invoice paid: the first of its lines with a ``period`` of positive length."""
    for line in list_data(invoice.get("lines")):
        period = line.get("period") or {}
        start, end = time_of(period.get("start")), time_of(period.get("end"))
        if start is not None and end is not None and end > start:
            return start, end
    return None, None


def customer_metadata(customer: Customer) -> dict[str, str]:
    metadata = {**customer.metadata, "userId": customer.user_id, "customerId": customer.customer_id}
    if customer.ip_address:
        metadata["ipAddress"] = customer.ip_address
    return metadata


def id_of(value: Any) -> str | None:
    if isinstance(value, dict):
        found = value.get("id")
        return str(found) if found else None
    return str(value) if value else None


def time_of(value: Any) -> datetime | None:
    """A Stripe timestamp (epoch seconds) as an aware UTC datetime; None when unset."""
    return datetime.fromtimestamp(int(value), UTC) if value else None
