"""Mint a local JWT for the dev server: ``python -m devtools.jwt_tokens --user alice [--admin] [--ttl 3600]``.

The dev server plays API Gateway's JWT authorizer with an HS256 secret (env ``LOCAL_JWT_SECRET``, default
``local-dev-secret``); tokens minted here carry the claims a real identity provider would put in front of the API:
``sub`` (the user id), ``scope`` (``credits/user``, plus ``credits/admin`` for admins), ``iat``, ``exp``, ``iss`` and
``aud``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import jwt
from jwt.warnings import InsecureKeyLengthWarning

DEFAULT_SECRET = "local-dev-secret"
ISSUER = "user-credits-local"
AUDIENCE = "user-credits"
USER_SCOPE = "credits/user"
ADMIN_SCOPE = "credits/admin"
DEFAULT_TTL_SECONDS = 3600


def jwt_secret() -> str:
    """The HS256 secret shared with the dev server (env ``LOCAL_JWT_SECRET``)."""
    return os.environ.get("LOCAL_JWT_SECRET") or DEFAULT_SECRET


def make_token(
    user: str,
    *,
    admin: bool = False,
    ttl: int = DEFAULT_TTL_SECONDS,
    secret: str | None = None,
    now: int | None = None,
    extra_claims: dict[str, object] | None = None,
) -> str:
    """Return an HS256 JWT for ``user`` (``admin`` adds the ``credits/admin`` scope), valid ``ttl`` seconds."""
    issued = int(time.time()) if now is None else now
    claims: dict[str, object] = {
        "sub": user,
        "scope": f"{USER_SCOPE} {ADMIN_SCOPE}" if admin else USER_SCOPE,
        "iat": issued,
        "exp": issued + ttl,
        "iss": ISSUER,
        "aud": AUDIENCE,
    }
    claims.update(extra_claims or {})
    with warnings.catch_warnings():
        # The contract's default secret is 16 bytes: fine for a local stand-in, short for PyJWT's taste.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret or jwt_secret(), algorithm="HS256")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.jwt_tokens", description="Print a local HS256 JWT.")
    parser.add_argument("--user", required=True, help="the user id (the token's sub claim)")
    parser.add_argument("--admin", action="store_true", help="add the credits/admin scope")
    parser.add_argument("--ttl", type=int, default=DEFAULT_TTL_SECONDS, help="seconds until it expires (default 3600)")
    args = parser.parse_args(argv)
    if not args.user.strip():
        parser.error("--user must not be empty")
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    print(make_token(args.user, admin=args.admin, ttl=args.ttl))
    return 0


if __name__ == "__main__":
    sys.exit(main())
