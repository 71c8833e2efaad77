"""Consumption function: credit balances, spending, holds and the ledger (HTTP API routes of api-contract.md).

Not built yet (issue 3): every route is declared so the template, the dev server and the contract line up, and
answers 501 ``not_implemented`` after authenticating the caller. The routes stay out of the OpenAPI document until
they work.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from usercredits.errors import NotImplementedYetError
from usercredits.http import current_caller, register_error_handlers, resolve
from usercredits.observability import logger, metrics

# Validation is off only while every route is a stub: the catch-all handler takes any path parameters.
app = APIGatewayHttpResolver()
register_error_handlers(app)

ROUTES = [
    ("GET", "/credits"),
    ("GET", "/credits/ledger"),
    ("GET", "/credits/<offerGroup>"),
    ("POST", "/credits/<offerGroup>/consume"),
    ("POST", "/credits/<offerGroup>/reservations"),
    ("POST", "/reservations/<reservationId>/capture"),
    ("POST", "/reservations/<reservationId>/release"),
    ("POST", "/credits/expiry-check"),
    ("GET", "/admin/users/<userId>/credits"),
    ("POST", "/admin/users/<userId>/credits/<offerGroup>/consume"),
    ("POST", "/admin/users/<userId>/grants"),
]


def handle_not_built(**path_parameters: str) -> dict[str, Any]:
    current_caller(app)
    raise NotImplementedYetError("credits (balances, consumption, holds, ledger) are not built yet")


for _method, _rule in ROUTES:
    app.route(_rule, method=_method, include_in_schema=False)(handle_not_built)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """HTTP API (payload 2.0) entry point; 501 for every route until the credits capability lands."""
    return resolve(app, event, context)
