"""One HTTP request as the server read it, and the Lambda event it becomes (``devtools.lambda_events`` builds it)."""

from __future__ import annotations

import secrets
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

from devtools.devserver.routes import Route
from devtools.lambda_context import ACCOUNT_ID
from devtools.lambda_events import ANONYMOUS_ACCOUNT, FUNCTION_URL_DOMAIN, http_api_event, new_event


@dataclass
class IncomingRequest:
    """One HTTP request as the server read it (headers keep their order and repeats)."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str = "127.0.0.1"
    host: str = "127.0.0.1"

    @classmethod
    def from_target(cls, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> IncomingRequest:
        split = urllib.parse.urlsplit(target)
        host = next((value for name, value in headers if name.lower() == "host"), "127.0.0.1")
        return cls(method.upper(), split.path or "/", split.query, headers, body, host=host)

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)

    def event_headers(self) -> tuple[dict[str, str], list[str]]:
        """Lower-cased headers, repeats comma-joined, plus the cookies API Gateway moves to their own field; with
        the ``x-forwarded-*`` and trace headers API Gateway adds."""
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in self.headers:
            key = name.lower()
            if key == "cookie":
                cookies.extend(part.strip() for part in value.split(";") if part.strip())
                continue
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        headers.setdefault("x-forwarded-for", self.source_ip)
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-forwarded-port", self.host.rpartition(":")[2] if ":" in self.host else "80")
        headers.setdefault("x-amzn-trace-id", f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}")
        return headers, cookies


def _request_event(
    request: IncomingRequest, *, path: str, domain: str, account_id: str, **parts: Any
) -> dict[str, Any]:
    headers, cookies = request.event_headers()
    received = new_event(
        request.method,
        path,
        domain=domain,
        source_ip=request.source_ip,
        user_agent=request.header("user-agent") or "",
        account_id=account_id,
    )
    return http_api_event(
        received, query=request.raw_query, headers=headers, cookies=cookies, body=request.body, **parts
    )


def http_api_request_event(
    request: IncomingRequest, route: Route, path_parameters: dict[str, str], claims: dict[str, Any] | None
) -> dict[str, Any]:
    """The API Gateway HTTP API (payload format 2.0) event for ``route``, with the authorizer's claims."""
    return _request_event(
        request,
        path=request.raw_path,
        domain=request.host,
        account_id=ACCOUNT_ID,
        route_key=route.route_key,
        path_parameters=path_parameters,
        claims=claims,
    )


def function_url_request_event(request: IncomingRequest) -> dict[str, Any]:
    """The Lambda Function URL (payload 2.0) event Stripe's POST would produce: called at the URL's root."""
    return _request_event(request, path="/", domain=FUNCTION_URL_DOMAIN, account_id=ANONYMOUS_ACCOUNT)
