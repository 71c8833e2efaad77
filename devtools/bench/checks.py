"""Checks of a measured route's answer: each returns what is wrong with the body, or ``None``."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


def new_customer(user: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body = body or {}
        # (the response shows no version: a new customer is one never sent to the processor)
        fresh = body.get("processor") == {"id": None, "state": "initial"}
        ok = body.get("userId") == user and fresh and body.get("customerId")
        return None if ok else f"expected a new customer of {user} (never synced): {json.dumps(body)[:300]}"

    return check


def same_customer(customer_id: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("customerId")
        return None if customer_id and found == customer_id else f"read customer {found}, not {customer_id}"

    return check


def default_method(token: str) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body = body or {}
        methods = {method.get("paymentMethodId"): method for method in body.get("paymentMethods", [])}
        chosen = methods.get(body.get("defaultPaymentMethodId")) or {}
        if chosen.get("token") == token and chosen.get("billingAddressId"):
            return None
        return f"expected the default to be {token} with a billing address: {json.dumps(body)[:300]}"

    return check


def subscribed(plan_id: str, coupon: str | None) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body, expected = body or {}, [coupon] if coupon else []
        codes = [discount.get("couponCode") for discount in body.get("discounts", [])]
        if (body.get("plan") or {}).get("planId") == plan_id and codes == expected:
            return None
        return f"expected a {plan_id} subscription with coupons {expected}: {json.dumps(body)[:300]}"

    return check


def granted(tokens: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        body = body or {}
        ok = body.get("kind") == "grant" and body.get("tokens") == tokens and body.get("entryId")
        return None if ok else f"expected a grant entry of {tokens} tokens: {json.dumps(body)[:300]}"

    return check


def consumed(balance: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("balance")
        return None if found == balance and (body or {}).get("consumed") == 1 else f"expected balance {balance}: {body}"

    return check


def same_entry(entry_id: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = (body or {}).get("entryId")
        return None if entry_id and found == entry_id else f"replay answered entry {found}, not {entry_id}"

    return check


def balances(expected: Mapping[str, int]) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = {group.get("offerGroup"): group.get("balance") for group in (body or {}).get("groups", [])}
        return None if found == dict(expected) else f"expected balances {dict(expected)}, got {found}"

    return check


def groups(count: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        groups = (body or {}).get("groups", [])
        lots = sum(len(group.get("lots", [])) for group in groups)
        return None if len(groups) == count and lots >= count else f"expected {count} groups with lots: {body}"

    return check


def held(held: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        found = [(group.get("balance"), group.get("held")) for group in (body or {}).get("groups", [])]
        return None if found == [(100, held)] else f"expected one group, balance 100 and {held} held: {found}"

    return check


def balance_of(balance: int) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        return None if (body or {}).get("balance") == balance else f"expected balance {balance}: {body}"

    return check


def entries(count: int, newest_consume: Any) -> Callable[[Any], str | None]:
    def check(body: Any) -> str | None:
        entries = (body or {}).get("entries", [])
        if len(entries) != count or newest_consume not in {entry.get("entryId") for entry in entries}:
            return f"expected {count} entries with {newest_consume}: {json.dumps(body)[:300]}"
        return None

    return check
