"""The template's HttpApi routes, compiled and matched the way API Gateway matches them (most specific first)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from devtools.lambda_events import route_pattern


@dataclass(frozen=True)
class Route:
    """An HttpApi route compiled for matching; ``specificity`` sorts literal segments before parameters."""

    method: str
    path: str
    function: str
    authorized: bool
    pattern: re.Pattern[str]
    specificity: tuple[int, ...]
    scopes: tuple[str, ...] = ()  # the event's Auth.AuthorizationScopes: the token needs one of them

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def compile_route(
    method: str, path: str, function: str, authorized: bool = True, scopes: tuple[str, ...] = ()
) -> Route:
    """``/orders/{orderId}`` -> a regex with named groups; ``{proxy+}`` matches the rest of the path."""
    rank = []
    for segment in path.strip("/").split("/"):
        rank.append(2 if segment.endswith("+}") else 1 if segment.startswith("{") else 0)
    return Route(method.upper(), path, function, authorized, route_pattern(path), tuple(rank), scopes)


def _route_is_authorized(event_properties: dict[str, Any]) -> bool:
    authorizer = ((event_properties.get("Auth") or {}).get("Authorizer")) or ""
    return authorizer != "NONE"


def template_routes(template: dict[str, Any] | None = None) -> list[Route]:
    """Every HttpApi route of the template (``devtools.cfn.http_routes``), compiled and most specific first."""
    from devtools.cfn import http_routes, load_template, resources_of_type

    template = template or load_template()
    unauthorized, scopes = set(), {}
    for resource in resources_of_type("AWS::Serverless::Function", template).values():
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values():
            props = event.get("Properties") or {}
            if event.get("Type") != "HttpApi":
                continue
            key = (str(props.get("Method", "")).upper(), props.get("Path"))
            if not _route_is_authorized(props):
                unauthorized.add(key)
            scopes[key] = tuple((props.get("Auth") or {}).get("AuthorizationScopes") or ())
    routes = [
        compile_route(
            r.method, r.path, r.function, (r.method, r.path) not in unauthorized, scopes.get((r.method, r.path), ())
        )
        for r in http_routes(template)
    ]
    return sorted(routes, key=lambda route: (route.specificity, route.path, route.method))


def match_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The most specific route for ``method path`` (``ANY`` matches every method), with its path parameters.

    As API Gateway HTTP APIs do, the path is decoded once, then routed: ``/admin/users/auth0%7Cabc/grants`` is user
    ``auth0|abc``, and an encoded ``/`` (``%2F``) splits the segment (no route)."""
    decoded = urllib.parse.unquote(path)
    for route in routes:
        if route.method not in (method, "ANY"):
            continue
        if found := route.pattern.match(decoded):
            return route, found.groupdict()
    return None
