"""The one builder of API Gateway HTTP API (payload 2.0) and Lambda Function URL events, and of their Stripe signature.

The dev server (from the HTTP requests it receives), the bench and the tests (from the samples of ``events/``) and
``devtools.invoke`` all build their events here, so every handler sees the same shape wherever it runs:

- :func:`new_event`: a request received now, with what API Gateway fills in itself (request id, time, source IP...);
- :func:`http_api_event`: a copy of a base event (a sample, or :func:`new_event`) as the request given: route key,
  path (decoded, with the path parameters its route key gives, as API Gateway HTTP APIs hand them over), query,
  headers (lower-cased), cookies, body (base64 when it is not UTF-8) and the JWT authorizer's claims
  (strings, as API Gateway passes them); what is not given is kept from the base;
- :func:`function_url_event`: the Function URL event of a ``POST /`` (no route, no authorizer), as Stripe's webhook
  deliveries arrive;
- :func:`sign_webhook_event`: the ``Stripe-Signature`` header of a Function URL event made to match its raw body.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from devtools.jwt_tokens import ADMIN_SCOPE, USER_SCOPE
from devtools.lambda_context import ACCOUNT_ID

LOCAL_DOMAIN = "127.0.0.1"
FUNCTION_URL_DOMAIN = "local.lambda-url.us-east-1.on.aws"
#: A Function URL's requests come from no AWS account (``requestContext.accountId``).
ANONYMOUS_ACCOUNT = "anonymous"


# ------------------------------------------------------------------------------------------------------ the caller
def caller_claims(user: str, *, admin: bool = False) -> dict[str, str]:
    """The claims of a token of ``user`` that matter to the handlers: ``sub`` and ``scope`` (admin: both scopes)."""
    return {"sub": user, "scope": f"{USER_SCOPE} {ADMIN_SCOPE}" if admin else USER_SCOPE}


def _claim_as_string(value: Any) -> str:
    """API Gateway hands every claim to the function as a string (arrays as ``[a b]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + " ".join(_claim_as_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def authorizer_context(claims: Mapping[str, Any]) -> dict[str, Any]:
    """``requestContext.authorizer`` of a request the JWT authorizer let through with ``claims``."""
    scope = claims.get("scope")
    scopes = scope.split() if isinstance(scope, str) else None
    return {"jwt": {"claims": {k: _claim_as_string(v) for k, v in claims.items()}, "scopes": scopes}}


# --------------------------------------------------------------------------------------------------- the request
def route_pattern(route_path: str) -> re.Pattern[str]:
    """``/orders/{orderId}`` -> a regex with a named group a parameter; ``{proxy+}`` matches the rest of the path."""
    parts = []
    for segment in route_path.strip("/").split("/"):
        if greedy := re.fullmatch(r"\{(\w+)\+\}", segment):
            parts.append(f"(?P<{greedy.group(1)}>.+)")
        elif param := re.fullmatch(r"\{(\w+)\}", segment):
            parts.append(f"(?P<{param.group(1)}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "$" if route_path.strip("/") else "^/$")


def route_parameters(route_key: str, path: str) -> dict[str, str]:
    """API Gateway's ``pathParameters`` of a request on ``path`` (already decoded) that ``route_key`` (``GET
    /orders/{orderId}``) routed; empty when the route has none or does not match."""
    route_path = route_key.partition(" ")[2]
    found = route_pattern(route_path).match(path) if "{" in route_path else None
    return found.groupdict() if found else {}


def query_parameters(raw_query: str) -> dict[str, str]:
    """API Gateway's ``queryStringParameters``: decoded, repeated names comma-joined."""
    params: dict[str, str] = {}
    for name, value in urllib.parse.parse_qsl(raw_query, keep_blank_values=True):
        params[name] = f"{params[name]},{value}" if name in params else value
    return params


def encode_body(body: bytes) -> tuple[str | None, bool]:
    """``(body, isBase64Encoded)`` of raw bytes: the text when it is UTF-8, else base64; no body when empty."""
    if not body:
        return None, False
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), True


def raw_body(event: Mapping[str, Any]) -> bytes:
    """The bytes an event's body stands for (base64-decoded when ``isBase64Encoded``)."""
    body = event.get("body") or ""
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")


def new_event(
    method: str,
    path: str = "/",
    *,
    domain: str = LOCAL_DOMAIN,
    source_ip: str = "127.0.0.1",
    user_agent: str = "",
    account_id: str = ACCOUNT_ID,
) -> dict[str, Any]:
    """A request received now at ``domain``, as API Gateway starts its event: no route, headers or body yet."""
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {},
        "requestContext": {
            "accountId": account_id,
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": user_agent,
            },
            "requestId": base64.b64encode(secrets.token_bytes(10)).decode("ascii").rstrip("="),
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }


def _set_or_drop(event: dict[str, Any], key: str, value: Mapping[str, str] | Sequence[str]) -> None:
    if value:
        event[key] = value
    else:
        event.pop(key, None)


def _set_query(event: dict[str, Any], query: Mapping[str, str] | str) -> None:
    if isinstance(query, str):
        event["rawQueryString"], parameters = query, query_parameters(query)
    else:
        event["rawQueryString"], parameters = "&".join(f"{k}={v}" for k, v in query.items()), dict(query)
    _set_or_drop(event, "queryStringParameters", parameters)


def _set_body(event: dict[str, Any], body: bytes | str) -> None:
    text, event["isBase64Encoded"] = (body, False) if isinstance(body, str) else encode_body(body)
    if text is None:
        event.pop("body", None)
    else:
        event["body"] = text


def _set_path(event: dict[str, Any], path: str | None, path_parameters: Mapping[str, str] | None) -> None:
    if path is not None:
        # API Gateway HTTP APIs decode the path once, route on it and hand both over decoded.
        event["rawPath"] = event["requestContext"]["http"]["path"] = urllib.parse.unquote(path)
        if path_parameters is None:
            path_parameters = route_parameters(str(event.get("routeKey") or ""), event["rawPath"])
    _set_or_drop(event, "pathParameters", dict(path_parameters or {}))


def http_api_event(
    base: Mapping[str, Any],
    *,
    method: str | None = None,
    path: str | None = None,
    route_key: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
    query: Mapping[str, str] | str | None = None,
    headers: Mapping[str, str] | None = None,
    cookies: Sequence[str] | None = None,
    body: bytes | str | None = None,
    claims: Mapping[str, Any] | None = None,
    anonymous: bool = False,
) -> dict[str, Any]:
    """A copy of ``base`` (a sample of ``events/`` or :func:`new_event`) as the request given; ``None`` keeps the
    base's.

    ``path``: the path as the client sent it (percent-encoded or not); the event holds it decoded, with the
    ``pathParameters`` its route key gives it unless ``path_parameters`` are given (as API Gateway does).
    ``query``: a raw query string (kept as sent, parsed like API Gateway) or a mapping (its parameters as they are);
    empty drops the parameters. ``headers`` are added lower-cased. ``body``: ``bytes`` are the raw body (see
    :func:`encode_body`; empty: no body), a ``str`` is the event's body as is; either drops the base's
    ``content-length``. ``claims``: the JWT authorizer's; ``anonymous`` drops the authorizer (no route auth).
    """
    event = copy.deepcopy(dict(base))
    context = event["requestContext"]
    http = context.setdefault("http", {})
    if method is not None:
        http["method"] = method
    if route_key is not None:
        event["routeKey"] = context["routeKey"] = route_key
    if path is not None or path_parameters is not None:
        _set_path(event, path, path_parameters)
    if query is not None:
        _set_query(event, query)
    event_headers = dict(event.get("headers") or {})
    if body is not None:
        event_headers.pop("content-length", None)  # the base's no longer counts this body
        _set_body(event, body)
    event["headers"] = event_headers | {name.lower(): value for name, value in (headers or {}).items()}
    if cookies is not None:
        _set_or_drop(event, "cookies", list(cookies))
    if anonymous:
        context.pop("authorizer", None)
    elif claims is not None:
        context["authorizer"] = authorizer_context(claims)
    return event


def function_url_event(
    *,
    body: bytes | str,
    headers: Mapping[str, str] | None = None,
    base: Mapping[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    user_agent: str = "",
) -> dict[str, Any]:
    """The Lambda Function URL event of a ``POST`` to the URL's root carrying ``body`` (on ``base``, e.g. the
    webhook's sample, or a request received now)."""
    if base is None:
        base = new_event(
            "POST",
            domain=FUNCTION_URL_DOMAIN,
            source_ip=source_ip,
            user_agent=user_agent,
            account_id=ANONYMOUS_ACCOUNT,
        )
    return http_api_event(base, body=body, headers=headers, anonymous=True)


# ------------------------------------------------------------------------------------------------ Stripe's signature
def sign_webhook_event(event: Mapping[str, Any], secret: str, timestamp: int | None = None) -> dict[str, Any]:
    """A copy of a Function URL event whose ``Stripe-Signature`` header is Stripe's for its raw body and ``secret``
    (the Stripe adapter's own ``sign_payload``: one signer for the dev server, the bench and the tests)."""
    from usercredits.adapters.stripe.webhooks import sign_payload  # usercredits is importable once the env is set

    signed = dict(event)
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "stripe-signature"}
    headers["stripe-signature"] = sign_payload(raw_body(event), secret, timestamp)
    signed["headers"] = headers
    return signed
