"""Expiry scan function (EventBridge schedule): expires due credit lots and sends warnings.

Not built yet (issue 5): the scheduled run logs that it did nothing and returns a summary with zero counts, so the
schedule, permissions and alarms can be deployed and watched before the scan exists.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.observability import logger, metrics


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Scheduled entry point; returns ``{"implemented": False, ...}`` until the scan lands (issue 5)."""
    logger.warning("expiry scan is not built yet; nothing was expired or warned", extra={"time": event.get("time")})
    return {"implemented": False, "lotsExpired": 0, "warningsSent": 0}
