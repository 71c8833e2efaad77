"""Request and response bodies of the consumption function (its part of the HTTP contract)."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from usercredits.domain.credits import CreditGroup
from usercredits.domain.expiry_check import Warning
from usercredits.domain.models import LedgerEntry
from usercredits.http_input import IdempotencyKey
from usercredits.kernel.models import DomainModel, Identifier


class ConsumeRequest(DomainModel):
    count: int = Field(ge=1, le=10**12, strict=True)
    idempotency_key: IdempotencyKey | None = None


class ConsumeResponse(DomainModel):
    offer_group: str
    consumed: int
    balance: int
    entry_id: str


class GrantRequest(DomainModel):
    offer_group: Identifier
    tokens: int = Field(ge=1, le=10**12, strict=True)
    expires: AwareDatetime | None = None
    reason: str = Field(min_length=1, max_length=500)


class ReservationRequest(DomainModel):
    count: int = Field(ge=1, le=10**12, strict=True)
    expires_in_seconds: int | None = Field(default=None, ge=1, le=7 * 86400, strict=True)


class CaptureRequest(DomainModel):
    count: int | None = Field(default=None, ge=0, le=10**12, strict=True)


class LowThreshold(DomainModel):
    offer_group: Identifier
    min: int = Field(ge=0, le=10**12, strict=True)


class ExpiryCheckRequest(DomainModel):
    warn_before_seconds: int = Field(default=0, ge=0, le=10 * 366 * 86400, strict=True)
    low: list[LowThreshold] = Field(default_factory=list, max_length=100)


class ExpiryCheckResponse(DomainModel):
    expired: list[CreditGroup]
    warnings: list[Warning]


class GroupUsage(DomainModel):
    offer_group: str
    tokens: int


class UsageResponse(DomainModel):
    groups: list[GroupUsage]


class CreditsResponse(DomainModel):
    groups: list[CreditGroup]


class LedgerResponse(DomainModel):
    entries: list[LedgerEntry]
    next_cursor: str | None


__all__ = [
    "GroupUsage",
    "UsageResponse",
    "ExpiryCheckRequest",
    "ExpiryCheckResponse",
    "CaptureRequest",
    "ReservationRequest",
    "ConsumeRequest",
    "ConsumeResponse",
    "CreditGroup",
    "CreditsResponse",
    "GrantRequest",
    "LedgerResponse",
]
