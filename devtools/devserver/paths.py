"""The paths the dev server serves besides the template's routes (API Gateway does not serve them)."""

from __future__ import annotations

import re

WEBHOOK_PATH = "/webhooks/stripe"  # the Stripe webhook function's Function URL
EVENTS_PATH = "/_local/events"
EXPIRY_SCAN_PATH = "/_local/expiry-scan"
CLOCK_PATH = "/_local/clock"
LOCAL_PAYMENTS_PATH = re.compile(r"^/_local/payments/(?P<intent>[^/]+)/(?P<action>succeed|fail|require-action|refund)$")
