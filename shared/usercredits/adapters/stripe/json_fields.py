"""Fields of Stripe's JSON read strictly, for both halves (payments and billing): a signed event of an unexpected
shape must fail to parse, not be read as a rounded amount or an empty object."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def minor_units(payload: Mapping[str, Any], key: str) -> int:
    """An integer field of Stripe's JSON (an amount in minor units, a time in epoch seconds); 0 when absent.

    Anything but an integer (a text, a fraction, a boolean) is not Stripe's shape: ``ValueError``, never a rounded
    amount."""
    value = payload.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is not an integer")
    return value


def metadata_of(payload: Mapping[str, Any]) -> dict[str, str]:
    """An object's ``metadata`` (Stripe's values are texts); ``TypeError`` when it is not an object."""
    metadata = payload.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise TypeError("metadata is not an object")
    return {str(key): str(value) for key, value in metadata.items()}
