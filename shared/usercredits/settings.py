"""Per-function settings, read from the environment once per container.

Plain pydantic models validated from ``os.environ`` instead of pydantic-settings: the latter adds ~90 ms to every cold
start (measured, see README "Observability and cold start"), which alone would break the ordering function's import
budget.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _EnvModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls) -> _EnvModel:
        return cls.model_validate(dict(os.environ))


class ObservabilitySettings(_EnvModel):
    POWERTOOLS_SERVICE_NAME: str = "user-credits"
    POWERTOOLS_METRICS_NAMESPACE: str = "UserCredits"


class CreditsTableSettings(_EnvModel):
    CREDITS_TABLE_NAME: str = Field(min_length=3)


class CustomersTableSettings(_EnvModel):
    CUSTOMERS_TABLE_NAME: str = Field(min_length=3)


class EventBusSettings(_EnvModel):
    EVENT_BUS_NAME: str = Field(min_length=1)


class PaymentSettings(_EnvModel):
    # "local" is the simulated provider (docs/api.md#local-simulation-dev-server-only; make run, tests); "stripe" is
    # production.
    PAYMENT_PROVIDER: Literal["local", "stripe"] = "stripe"
    # Name of the Secrets Manager secret holding the Stripe keys; never the key itself.
    STRIPE_SECRET_NAME: str = ""
    LOCAL_WEBHOOK_SECRET: str = "whsec_local"
    # The local provider's subscription processor: the dev server's Stripe simulation (devtools/stripe_sim), which
    # the real Stripe adapter calls. Empty: the local provider has none (sync, reload, refund and void answer 409).
    # Only a loopback URL, so no deployed function can be pointed at another Stripe.
    LOCAL_STRIPE_API_BASE: str = Field(default="", pattern=r"^(http://(127\.0\.0\.1|localhost)(:[0-9]{1,5})?)?$")


class CatalogSettings(_EnvModel):
    # How long a warm container keeps the catalog (offers and group policies) before reading it again.
    CATALOG_CACHE_SECONDS: int = Field(default=60, ge=0)


class LocalClockSettings(_EnvModel):
    """The test clock of ``make run`` (``usercredits.adapters.clock``): a file the dev server writes when
    ``POST /_local/clock`` moves time. Empty: the real clock. Refused inside AWS Lambda, so a deployed function fails
    to start rather than run on a fake clock (the template never sets it; the infrastructure tests check that)."""

    LOCAL_CLOCK_FILE: str = ""
    # Set by the Lambda runtime (e.g. "AWS_Lambda_python3.13"); never set by the template.
    AWS_EXECUTION_ENV: str = ""

    @model_validator(mode="after")
    def _no_local_clock_in_lambda(self) -> Self:
        if self.LOCAL_CLOCK_FILE and self.AWS_EXECUTION_ENV.startswith("AWS_Lambda"):
            raise ValueError(
                "LOCAL_CLOCK_FILE is the local test clock of `make run` and cannot be used in AWS Lambda "
                f"(AWS_EXECUTION_ENV={self.AWS_EXECUTION_ENV}): remove it from the function's environment"
            )
        return self


class OrderingSettings(
    ObservabilitySettings,
    CreditsTableSettings,
    EventBusSettings,
    PaymentSettings,
    CatalogSettings,
    LocalClockSettings,
):
    DEFAULT_CURRENCY: str = Field(default="usd", pattern=r"^[a-z]{3}$")


class ConsumptionSettings(
    ObservabilitySettings, CreditsTableSettings, EventBusSettings, CatalogSettings, LocalClockSettings
):
    pass


class StripeWebhookSettings(
    ObservabilitySettings,
    CreditsTableSettings,
    CustomersTableSettings,
    EventBusSettings,
    PaymentSettings,
    CatalogSettings,
    LocalClockSettings,
):
    pass


class SubscriptionSettings(_EnvModel):
    # Days a subscription still entitles after its paid-through date when its plan sets no gracePeriodDays (the
    # seed's one day; docs/rules.md#entitlement).
    SUBSCRIPTION_GRACE_DAYS: int = Field(default=1, ge=0, le=365)


class CustomersSettings(
    ObservabilitySettings,
    CustomersTableSettings,
    EventBusSettings,
    PaymentSettings,
    LocalClockSettings,
    SubscriptionSettings,
):
    """The customers API: the customers table only (no access to the credits table); ``EVENT_BUS_NAME`` comes with
    the template's Globals; the payment settings choose the processor that reads payment method tokens (and, with
    the sync, Stripe)."""


class EventPublisherSettings(ObservabilitySettings, CreditsTableSettings, CustomersTableSettings, EventBusSettings):
    """Both tables' streams feed the function (it reads no item through the API)."""


#: The longest warning window (seconds): a window's first run reads one index bucket per hour of it.
MAX_WARNING_WINDOW = 90 * 86400


class ExpiryScanSettings(
    ObservabilitySettings, CreditsTableSettings, EventBusSettings, CatalogSettings, LocalClockSettings
):
    # Seconds before a lot's expiry at which CreditsExpiringSoon is published (once per lot and window), comma
    # separated; empty for none. Template parameter ExpiryWarningWindows.
    EXPIRY_WARNING_WINDOWS: str = Field(default="604800,86400", pattern=r"^ *([0-9]+ *(, *[0-9]+ *)*)?$")

    @field_validator("EXPIRY_WARNING_WINDOWS")
    @classmethod
    def _windows_in_range(cls, value: str) -> str:
        if any(not 0 < window <= MAX_WARNING_WINDOW for window in _seconds(value)):
            raise ValueError(f"each warning window must be from 1 to {MAX_WARNING_WINDOW} seconds")
        return value

    @property
    def warning_windows(self) -> tuple[int, ...]:
        """The windows in seconds, shortest first, each once."""
        return tuple(sorted(set(_seconds(self.EXPIRY_WARNING_WINDOWS))))


def _seconds(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


@lru_cache
def get_event_publisher_settings() -> EventPublisherSettings:
    return EventPublisherSettings.model_validate(dict(os.environ))


@lru_cache
def get_ordering_settings() -> OrderingSettings:
    return OrderingSettings.model_validate(dict(os.environ))


@lru_cache
def get_consumption_settings() -> ConsumptionSettings:
    return ConsumptionSettings.model_validate(dict(os.environ))


@lru_cache
def get_stripe_webhook_settings() -> StripeWebhookSettings:
    return StripeWebhookSettings.model_validate(dict(os.environ))


@lru_cache
def get_customers_settings() -> CustomersSettings:
    return CustomersSettings.model_validate(dict(os.environ))


@lru_cache
def get_expiry_scan_settings() -> ExpiryScanSettings:
    return ExpiryScanSettings.model_validate(dict(os.environ))


#: Settings model of each function folder; the infrastructure tests check template.yaml sets every required variable.
SETTINGS_BY_FUNCTION: dict[str, type[_EnvModel]] = {
    "ordering": OrderingSettings,
    "consumption": ConsumptionSettings,
    "stripe_webhook": StripeWebhookSettings,
    "expiry_scan": ExpiryScanSettings,
    "event_publisher": EventPublisherSettings,
    "customers": CustomersSettings,
}
