"""The JWT authorizer API Gateway runs in front of the routes: an HS256 bearer token (``devtools.jwt_tokens``)."""

from __future__ import annotations

from typing import Any

from devtools.jwt_tokens import AUDIENCE, ISSUER, jwt_secret


class UnauthorizedRequestError(Exception):
    """No valid bearer token: the server answers 401 like API Gateway's JWT authorizer."""


def verify_bearer(authorization: str | None, secret: str | None = None) -> dict[str, Any]:
    """Verify ``Bearer <HS256 JWT>`` and return its claims, or raise :class:`UnauthorizedRequestError`."""
    import jwt

    if not authorization:
        raise UnauthorizedRequestError("missing Authorization header (Bearer <JWT>; make token USER=alice)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedRequestError("the Authorization header must be 'Bearer <JWT>'")
    try:
        claims: dict[str, Any] = jwt.decode(
            token.strip(),
            secret or jwt_secret(),
            algorithms=["HS256"],
            options={"require": ["sub"], "verify_aud": False, "verify_iss": False},
        )
    except jwt.PyJWTError as exc:
        raise UnauthorizedRequestError(f"invalid token: {exc}") from exc
    audience = claims.get("aud")
    if audience is not None and AUDIENCE not in ([audience] if isinstance(audience, str) else audience):
        raise UnauthorizedRequestError(f"invalid token: audience must be {AUDIENCE}")
    if claims.get("iss") not in (None, ISSUER):
        raise UnauthorizedRequestError(f"invalid token: issuer must be {ISSUER}")
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise UnauthorizedRequestError("invalid token: sub must be a non-empty string")
    return claims


def token_scopes(claims: dict[str, Any]) -> set[str]:
    """The scopes of a token, as API Gateway's JWT authorizer reads them: the ``scope`` or ``scp`` claim (a
    space-separated string or a list)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found |= set(value.split())
        elif isinstance(value, list):
            found |= {str(scope) for scope in value}
    return found
