"""HTTP edge helpers shared by the API functions: the one error -> status table, caller identity, error schema."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

from usercredits import errors
from usercredits.http_input import (
    HttpApiResolver,
    IdempotencyKeyHeader,
    UserPath,
    check_user_id,
    is_json_media_type,
    routable_path,
)
from usercredits.kernel.models import Caller
from usercredits.observability import logger

ADMIN_SCOPE = "credits/admin"
ADMIN_PATH_PREFIX = "/admin/"

#: A path segment naming an offer, offer group or order (the domain's ``Identifier``).
IdentifierPath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


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
    # A storage failure that is not throttling or a timeout (DynamoDB refusing a request): retrying cannot help, so it
    # is no 503; the edge's limits keep every request DynamoDB would refuse from reaching it.
    errors.PersistenceError: (HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error"),
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


def domain_error_response(exc: errors.DomainError) -> Response[str]:
    """The contract's answer to a domain error (``ERROR_TABLE``; ``Retry-After`` on ``unavailable``)."""
    status, code = next(
        (value for cls, value in ERROR_TABLE.items() if isinstance(exc, cls)),
        (HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error"),
    )
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, errors.UnavailableError) else None
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        logger.warning("request failed", extra={"error": code, "reason": exc.message})
    return error_response(status, code, exc.message, exc.details, headers)


def register_error_handlers(app: APIGatewayHttpResolver) -> None:
    """Install the error table on ``app``: domain errors, request validation, and a last-resort 500."""

    app.exception_handler(errors.DomainError)(domain_error_response)

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
    """``app.resolve`` after the checks of the edge, each answered with the contract's error body before any route
    code or request validation runs:

    - the caller's subject fits the keys it reaches (``http_input.check_user_id``);
    - ``/admin/...`` needs the admin scope: 403 whatever the body (a user never learns how to shape an admin request);
    - a body is JSON (``application/json`` or ``+json``, any case, parameters allowed), refused with 422 otherwise
      (Powertools would try form and multipart parsing, and read only the lower-case ``application/json`` as JSON).

    The path is routed percent-encoded (``http_input.routable_path``) and its parameters decoded exactly once.
    """
    try:
        event = _checked(event)
    except errors.DomainError as exc:
        response = domain_error_response(exc)
        return {
            "statusCode": int(response.status_code),
            "headers": {"Content-Type": content_types.APPLICATION_JSON, **(response.headers or {})},
            "body": response.body,
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` ready to route (JSON media type named in lower case, path encoded); raises the edge's
    refusals."""
    path = routable_path(str(event.get("rawPath") or "/"))
    authorizer = (event.get("requestContext") or {}).get("authorizer")
    if authorizer or path.startswith(ADMIN_PATH_PREFIX):
        caller = caller_of(authorizer)
        if path.startswith(ADMIN_PATH_PREFIX) and not caller.is_admin:
            raise errors.ForbiddenError(f"this route needs the {ADMIN_SCOPE} scope")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    content_type = str(headers.get("content-type") or "").strip()
    if content_type and event.get("body"):
        if not is_json_media_type(content_type):
            raise errors.InvalidRequestError(
                f"Content-Type must be application/json (got {content_type[:100]!r})",
                details=[{"field": "content-type", "message": "not a JSON media type", "type": "media_type"}],
            )
        headers["content-type"] = content_types.APPLICATION_JSON
    return {**event, "rawPath": path, "headers": headers}


def caller_of(authorizer: dict[str, Any] | None) -> Caller:
    """The caller from the JWT authorizer's context (``requestContext.authorizer``): ``sub``, and the admin scope in
    the ``scope`` claim or the authorizer's ``scopes``."""
    jwt = (authorizer or {}).get("jwt") or {}
    claims: dict[str, Any] = jwt.get("claims") or {}
    user_id = claims.get("sub")
    if not isinstance(user_id, str) or not user_id:
        raise errors.UnauthorizedError("missing or invalid token")
    scopes = _scopes(claims.get("scope")) | set(jwt.get("scopes") or [])
    return Caller(user_id=check_user_id(user_id), is_admin=ADMIN_SCOPE in scopes)


def current_caller(app: APIGatewayHttpResolver) -> Caller:
    """The caller of the request being resolved (see :func:`caller_of`)."""
    return caller_of((app.current_event.get("requestContext") or {}).get("authorizer"))


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


__all__ = [
    "ADMIN_SCOPE",
    "ERROR_TABLE",
    "ErrorResponse",
    "HttpApiResolver",
    "IdempotencyKeyHeader",
    "IdentifierPath",
    "UserPath",
    "api_responses",
    "caller_of",
    "current_caller",
    "domain_error_response",
    "error_response",
    "register_error_handlers",
    "require_admin",
    "resolve",
]
