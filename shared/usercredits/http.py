"""HTTP edge helpers shared by the API functions: the one error -> status table, caller identity, error schema."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Header, Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from usercredits import errors
from usercredits.kernel.models import Caller
from usercredits.observability import logger

ADMIN_SCOPE = "credits/admin"

#: A path segment naming an offer, offer group or order (the domain's ``Identifier``).
IdentifierPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]
#: The contract's ``Idempotency-Key`` header (any string up to 255 characters).
IdempotencyKeyHeader = Annotated[str | None, Header(alias="idempotency-key", min_length=1, max_length=255)]


class ErrorResponse(BaseModel):
    """The contract's error body: ``{"error": code, "message": text, "details": [...]}``."""

    error: str = Field(examples=["validation_error"])
    message: str
    details: list[dict[str, Any]] | None = None


#: The single mapping from domain errors to HTTP (most specific class first).
ERROR_TABLE: dict[type[errors.DomainError], tuple[HTTPStatus, str]] = {
    errors.InvalidRequestError: (HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error"),
    errors.UnauthorizedError: (HTTPStatus.UNAUTHORIZED, "unauthorized"),
    errors.ForbiddenError: (HTTPStatus.FORBIDDEN, "forbidden"),
    errors.NotFoundError: (HTTPStatus.NOT_FOUND, "not_found"),
    errors.ConflictError: (HTTPStatus.CONFLICT, "conflict"),
    errors.InsufficientCreditsError: (HTTPStatus.PAYMENT_REQUIRED, "insufficient_credits"),
    errors.InvalidSignatureError: (HTTPStatus.BAD_REQUEST, "invalid_signature"),
    errors.UnavailableError: (HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"),
    errors.PaymentGatewayError: (HTTPStatus.BAD_GATEWAY, "payment_gateway_error"),
    errors.PersistenceError: (HTTPStatus.SERVICE_UNAVAILABLE, "unavailable"),
}


def error_response(
    status: HTTPStatus,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[str]:
    body = ErrorResponse(error=code, message=message, details=details).model_dump_json(exclude_none=True)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    details = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ())]
        details.append({"field": ".".join(location), "message": str(error.get("msg", "")), "type": error.get("type")})
    return details


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Install the error table on ``app``: domain errors, request validation, and a last-resort 500."""

    @app.exception_handler(errors.DomainError)
    def _domain_error(exc: errors.DomainError) -> Response[str]:
        status, code = next(
            (value for cls, value in ERROR_TABLE.items() if isinstance(exc, cls)),
            (HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error"),
        )
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.UnavailableError) else None
        if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            logger.warning("request failed", extra={"error": code, "reason": exc.message})
        return error_response(status, code, exc.message, exc.details, headers)

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[str]:
        details = _validation_details(exc)
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details[:5]) or "invalid request"
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", summary, details)

    @app.exception_handler(ServiceError)
    def _powertools_error(exc: ServiceError) -> Response[str]:
        # Powertools' own HTTP errors (a route that does not exist is its NotFoundError): keep their status.
        status = HTTPStatus(exc.status_code)
        code = {HTTPStatus.NOT_FOUND: "not_found", HTTPStatus.UNAUTHORIZED: "unauthorized"}.get(status, "bad_request")
        return error_response(status, code, str(exc.msg))

    @app.exception_handler(UnicodeDecodeError)
    def _not_utf8(exc: UnicodeDecodeError) -> Response[str]:
        return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, "validation_error", "request body is not UTF-8 JSON")

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal error")


def resolve(app: APIGatewayHttpResolver, event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``app.resolve``, except that a body which is not JSON is refused up front with 422.

    The API speaks JSON only; Powertools would otherwise try form and multipart parsing and fail with a 500 on a
    multipart body without a boundary.
    """
    headers = event.get("headers") or {}
    content_type = next((str(v) for k, v in headers.items() if k.lower() == "content-type"), "").strip().lower()
    if event.get("body") and content_type and not content_type.startswith("application/json"):
        body = ErrorResponse(error="validation_error", message="Content-Type must be application/json")
        return {
            "statusCode": HTTPStatus.UNPROCESSABLE_ENTITY,
            "headers": {"Content-Type": "application/json"},
            "body": body.model_dump_json(exclude_none=True),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


def current_caller(app: APIGatewayHttpResolver) -> Caller:
    """The caller from the JWT authorizer's claims (``sub``, and ``scope`` containing ``credits/admin``)."""
    authorizer = app.current_event.request_context.authorizer
    claims: dict[str, Any] = (authorizer.jwt_claim if authorizer else None) or {}
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        raise errors.UnauthorizedError("missing or invalid token")
    scopes = _scopes(claims.get("scope")) | set(authorizer.jwt_scopes or []) if authorizer else set()
    return Caller(user_id=user_id, is_admin=ADMIN_SCOPE in scopes)


def _scopes(raw: Any) -> set[str]:
    # API Gateway passes claims as strings; an array claim arrives as "[a b]".
    if isinstance(raw, list):
        return {str(scope) for scope in raw}
    if isinstance(raw, str):
        return set(raw.strip("[]").replace(",", " ").split())
    return set()


def require_admin(app: APIGatewayHttpResolver) -> Caller:
    """The caller, who must hold the ``credits/admin`` scope (403 otherwise)."""
    caller = current_caller(app)
    if not caller.is_admin:
        raise errors.ForbiddenError(f"this route needs the {ADMIN_SCOPE} scope")
    return caller


def api_responses(success: HTTPStatus, *errors: HTTPStatus) -> dict[int, OpenAPIResponse]:
    """OpenAPI ``responses`` of a route: ``success`` with the route's return schema; ``errors``, plus the 401, 422
    and 503 that every authenticated, validated route can answer, with the contract's error body."""
    responses: dict[int, OpenAPIResponse] = {int(success): {"description": success.phrase}}
    if success == HTTPStatus.NO_CONTENT:
        responses[int(success)]["content"] = {}  # no body at all (not a JSON null)
    always = (HTTPStatus.UNAUTHORIZED, HTTPStatus.UNPROCESSABLE_ENTITY, HTTPStatus.SERVICE_UNAVAILABLE)
    for status in (*errors, *always):
        responses[int(status)] = {
            "description": status.phrase,
            "content": {"application/json": {"model": ErrorResponse}},
        }
    return responses
