"""The dev server routes as API Gateway HTTP APIs do: the path decoded once, then matched; scopes asked by the route."""

from __future__ import annotations

from devtools.devserver.auth import token_scopes
from devtools.devserver.routes import match_route, template_routes
from devtools.lambda_events import http_api_event, new_event


def test_the_path_is_decoded_once_then_routed() -> None:
    routes = template_routes()
    found = match_route(routes, "POST", "/admin/users/auth0%7Cabc/grants")
    assert found is not None and found[1] == {"userId": "auth0|abc"}
    found = match_route(routes, "GET", "/admin/users/100%2541/credits")
    assert found is not None and found[1] == {"userId": "100%41"}  # "%2541" -> "%41", never "A"
    found = match_route(routes, "GET", "/admin/customers/Jos%C3%A9")
    assert found is not None and found[1] == {"userId": "José"}
    # An encoded "/" separates segments once decoded: no route, as in API Gateway
    assert match_route(routes, "POST", "/admin/users/a%2Fb/grants") is None


def test_admin_routes_carry_the_admin_scope_and_the_others_none() -> None:
    for route in template_routes():
        assert route.scopes == (("credits/admin",) if route.path.startswith("/admin/") else ()), route


def test_token_scopes_read_scope_and_scp() -> None:
    assert token_scopes({"scope": "credits/user credits/admin"}) == {"credits/user", "credits/admin"}
    assert token_scopes({"scp": ["credits/admin"]}) == {"credits/admin"}
    assert token_scopes({"scope": 3}) == set()


def test_the_event_builder_gives_the_path_as_api_gateway_does() -> None:
    # Given a request as a client sends it, percent-encoded
    event = http_api_event(
        new_event("POST", "/"), route_key="POST /admin/users/{userId}/grants", path="/admin/users/auth0%7Cab%20c/grants"
    )
    # Then the event holds the decoded path and the decoded parameter
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/admin/users/auth0|ab c/grants"
    assert event["pathParameters"] == {"userId": "auth0|ab c"}
    # And a path its route key does not match has no parameters
    other = http_api_event(new_event("GET", "/"), route_key="GET /admin/users/{userId}/credits", path="/offers")
    assert "pathParameters" not in other
