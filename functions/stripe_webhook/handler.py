"""Stripe webhook function (Lambda Function URL, raw body + ``Stripe-Signature``).

Not built yet (issue 4): answers 501 ``not_implemented`` so Stripe keeps retrying (it retries for 3 days) instead
of the event being acknowledged and lost.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver
from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.errors import NotImplementedYetError
from usercredits.http import register_error_handlers
from usercredits.observability import logger, metrics

app = LambdaFunctionUrlResolver()
register_error_handlers(app)  # type: ignore[arg-type]


@app.post("/")
def handle_stripe_event() -> dict[str, Any]:
    raise NotImplementedYetError("Stripe webhooks are not handled yet; Stripe will retry the delivery")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Function URL entry point; 501 until the payments capability lands (nothing is acknowledged, nothing lost)."""
    return app.resolve(event, context)
