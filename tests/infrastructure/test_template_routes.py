"""template.yaml <-> Powertools resolvers: API Gateway routes exactly the requests each handler's resolver serves.

A route only in the template reaches the function and answers 404; a route only in the handler is unreachable in AWS
(but works locally). Routes registered with ``include_in_schema=False`` count too: API Gateway must still route them.

Each handler is imported in-process (pytest's pythonpath has ``functions/``); a missing handler module fails with a
message naming it (the consumption, stripe_webhook and expiry_scan handlers arrive with their issues).
"""

from __future__ import annotations

import importlib
import re
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from devtools.cfn import http_routes

from tests.infrastructure.conftest import ROOT, FunctionConfig

HTTP_FOLDERS = sorted({route.function for route in http_routes()})


def _import_handler(config: FunctionConfig) -> ModuleType:
    module_name = config.handler.rsplit(".", 1)[0]
    path = ROOT / "functions" / (module_name.replace(".", "/") + ".py")
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} does not exist yet (Handler {config.handler} of {config.logical_id})")
    return importlib.import_module(module_name)


def _resolvers(module: ModuleType) -> list[ApiGatewayResolver]:
    return [value for value in vars(module).values() if isinstance(value, ApiGatewayResolver)]


def _resolver_routes(resolver: ApiGatewayResolver) -> set[tuple[str, str]]:
    """(METHOD, /path/{param}) of every route registered on the resolver (routers included once included)."""
    try:
        routes = list(resolver._static_routes) + list(resolver._dynamic_routes)
    except AttributeError:  # pragma: no cover - Powertools internals moved
        pytest.fail("Powertools resolver internals changed: update _resolver_routes (was _static/_dynamic_routes)")
    return {(route.method.upper(), route.openapi_path) for route in routes if route.method.upper() != "OPTIONS"}


def _template_routes(folder: str) -> set[tuple[str, str]]:
    return {(route.method, route.path) for route in http_routes() if route.function == folder}


def _shape(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
    return {(method, re.sub(r"\{[^}]+\}", "{}", path)) for method, path in routes}


def _http_resolver(config: FunctionConfig) -> APIGatewayHttpResolver:
    module = _import_handler(config)
    resolvers = [r for r in _resolvers(module) if isinstance(r, APIGatewayHttpResolver)]
    assert len(resolvers) == 1, (
        f"{config.handler}: expected one APIGatewayHttpResolver at module level, got {resolvers}"
    )
    return resolvers[0]


@pytest.mark.parametrize("folder", HTTP_FOLDERS)
def test_template_routes_equal_resolver_routes(folder: str, functions: dict[str, FunctionConfig]) -> None:
    # Given the function's HttpApi events and its handler's resolver
    expected = _template_routes(folder)
    served = _resolver_routes(_http_resolver(functions[folder]))
    # Then they route the same methods and paths (parameter names aside, see the next test)
    assert {
        "only in template.yaml": _shape(expected) - _shape(served),
        "only in the handler": _shape(served) - _shape(expected),
    } == {
        "only in template.yaml": set(),
        "only in the handler": set(),
    }


@pytest.mark.parametrize("folder", HTTP_FOLDERS)
def test_template_path_parameters_equal_resolver_parameters(folder: str, functions: dict[str, FunctionConfig]) -> None:
    # Given the same routes
    expected = _template_routes(folder)
    served = _resolver_routes(_http_resolver(functions[folder]))
    # Then the path parameters have the same names too (the OpenAPI document shows the handler's names)
    assert sorted(served) == sorted(expected)


def test_functions_without_http_events_have_no_http_resolver(functions: dict[str, FunctionConfig]) -> None:
    # Given the functions that API Gateway does not call
    for folder, config in functions.items():
        if folder in HTTP_FOLDERS:
            continue
        path = ROOT / "functions" / folder / "handler.py"
        if not path.is_file():
            continue  # reported by test_template_build when the build is checked
        # Then their handler serves no HTTP API routes that nothing could reach
        module = _import_handler(config)
        assert not [r for r in _resolvers(module) if isinstance(r, APIGatewayHttpResolver)], folder


def test_http_routes_are_unique_and_use_payload_2(template: dict[str, Any]) -> None:
    # Given every HttpApi event
    keys = [(route.method, route.path) for route in http_routes(template)]
    # Then no route key is claimed twice (API Gateway would reject the stack)
    assert len(keys) == len(set(keys))
    for logical_id, resource in template["Resources"].items():
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event["Type"] == "HttpApi":
                properties = event["Properties"]
                # and each is a payload 2.0 route of the one HttpApi, behind its default (JWT) authorizer
                assert properties.get("PayloadFormatVersion") == "2.0", f"{logical_id}.{name}"
                assert properties.get("ApiId") == {"Ref": "HttpApi"}, f"{logical_id}.{name}"
                # (an event may add AuthorizationScopes to it, never name another authorizer)
                auth = properties.get("Auth") or {}
                assert set(auth) <= {"AuthorizationScopes"}, f"{logical_id}.{name} overrides the JWT authorizer"


def test_admin_routes_need_the_admin_scope_at_the_authorizer_and_only_they_do(template: dict[str, Any]) -> None:
    from usercredits.http import ADMIN_PATH_PREFIX, ADMIN_SCOPE

    # Given every HttpApi event of every function
    checked = 0
    for logical_id, resource in template["Resources"].items():
        for name, event in (resource.get("Properties", {}).get("Events") or {}).items():
            if event["Type"] != "HttpApi":
                continue
            properties = event["Properties"]
            scopes = (properties.get("Auth") or {}).get("AuthorizationScopes")
            # Then an admin route asks API Gateway for the admin scope (a user token never reaches the function)
            if properties["Path"].startswith(ADMIN_PATH_PREFIX):
                assert scopes == [ADMIN_SCOPE], f"{logical_id}.{name} ({properties['Path']}) lacks {ADMIN_SCOPE}"
                checked += 1
            # and no other route does (users must reach them)
            else:
                assert not scopes, f"{logical_id}.{name} ({properties['Path']}) asks for scopes {scopes}"
    assert checked >= 12
    # And the local tokens name the same scope as the handlers and the template
    from devtools.jwt_tokens import ADMIN_SCOPE as LOCAL_ADMIN_SCOPE

    assert LOCAL_ADMIN_SCOPE == ADMIN_SCOPE
