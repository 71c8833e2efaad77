"""template.yaml wiring: runtime, architecture, both layers everywhere, the webhook URL, the schedule, the API auth."""

from __future__ import annotations

import json
from typing import Any

import pytest
from devtools.cfn import resources_of_type

from tests.infrastructure.conftest import ROOT, FunctionConfig

LAYERS = ("DependenciesLayer", "DomainLayer")


def _runtime() -> str:
    major, minor = (ROOT / ".python-version").read_text(encoding="utf-8").strip().split(".")[:2]
    return f"python{major}.{minor}"


@pytest.mark.parametrize("logical_id", LAYERS)
def test_layer_builds_precompiled_for_arm64(logical_id: str, template: dict[str, Any]) -> None:
    # Given the layer resource
    layer = template["Resources"][logical_id]
    # Then it is built by its Makefile (which precompiles) for arm64 and the project's Python
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == [_runtime()]
    makefile = ROOT / layer["Properties"]["ContentUri"] / "Makefile"
    text = makefile.read_text(encoding="utf-8")
    assert f"build-{logical_id}:" in text
    assert "compileall" in text and "unchecked-hash" in text


def test_layers_ship_the_dependencies_and_the_domain_package(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources["DependenciesLayer"]["Properties"]["ContentUri"].rstrip("/") == "layers/dependencies"
    assert resources["DomainLayer"]["Properties"]["ContentUri"].rstrip("/") == "shared"
    assert (ROOT / "layers" / "dependencies" / "requirements.txt").is_file()
    assert (ROOT / "shared" / "usercredits" / "__init__.py").is_file()


def test_every_function_uses_both_layers_runtime_and_arm64(functions: dict[str, FunctionConfig]) -> None:
    for config in functions.values():
        assert {"Ref": "DependenciesLayer"} in config.layers, config.logical_id
        assert {"Ref": "DomainLayer"} in config.layers, config.logical_id
        assert config.prop("Runtime") == _runtime(), config.logical_id
        assert config.prop("Architectures") == ["arm64"], config.logical_id
        assert config.prop("Tracing") == "Active", config.logical_id
        assert config.prop("CodeUri").rstrip("/") == "functions", config.logical_id
        assert config.handler == f"{config.folder}.handler.lambda_handler", config.logical_id


def test_stripe_webhook_is_a_public_function_url_without_api_routes(functions: dict[str, FunctionConfig]) -> None:
    # Given the webhook function
    webhook = functions["stripe_webhook"]
    # Then Stripe reaches it through its Function URL (the signature is the authentication), not through the API
    assert webhook.prop("FunctionUrlConfig")["AuthType"] == "NONE"
    assert not [event for event in webhook.events.values() if event["Type"] in {"HttpApi", "Api"}]
    # and no other function is publicly reachable by URL
    others = [c.logical_id for c in functions.values() if c.folder != "stripe_webhook" and c.prop("FunctionUrlConfig")]
    assert others == []


def test_expiry_scan_runs_on_the_rate_parameter(functions: dict[str, FunctionConfig], template: dict[str, Any]) -> None:
    # Given the expiry scan's events
    events = functions["expiry_scan"].events
    schedules = [event for event in events.values() if event["Type"] in {"Schedule", "ScheduleV2"}]
    # Then exactly one schedule drives it, at the ExpiryScanRate parameter (default every 15 minutes)
    assert len(schedules) == 1 and len(events) == 1
    assert schedules[0]["Properties"]["ScheduleExpression"] == {"Ref": "ExpiryScanRate"}
    assert template["Parameters"]["ExpiryScanRate"]["Default"] == "rate(15 minutes)"


def test_http_api_uses_a_jwt_authorizer_by_default(template: dict[str, Any]) -> None:
    # Given the HTTP API
    apis = resources_of_type("AWS::Serverless::HttpApi", template)
    assert list(apis) == ["HttpApi"]
    auth = apis["HttpApi"]["Properties"]["Auth"]
    # Then every route is behind the JWT authorizer configured from the parameters
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["IdentitySource"] == "$request.header.Authorization"
    assert authorizer["JwtConfiguration"] == {"issuer": {"Ref": "JwtIssuer"}, "audience": {"Ref": "JwtAudience"}}
    assert "Idempotency-Key" in apis["HttpApi"]["Properties"]["CorsConfiguration"]["AllowHeaders"]


def test_outputs_name_what_clients_and_operators_need(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    expected = {"ApiUrl", "StripeWebhookUrl", "CreditsTableName", "CustomersTableName", "EventBusName"}
    assert expected <= set(outputs)
    for logical_id in resources_of_type("AWS::Serverless::Function", template):
        assert f"{logical_id}Name" in outputs
    assert outputs["StripeWebhookUrl"]["Value"] == {"Fn::GetAtt": ["StripeWebhookFunctionUrl", "FunctionUrl"]}


def test_scheduler_input_is_an_eventbridge_shaped_event(functions: dict[str, FunctionConfig]) -> None:
    # Given the schedule's Input (Scheduler sends it verbatim, with its <aws.scheduler.*> placeholders filled in)
    schedule = next(iter(functions["expiry_scan"].events.values()))["Properties"]
    text = schedule["Input"]["Fn::Sub"]
    payload = json.loads(text.replace("${AWS::AccountId}", "123456789012").replace("${AWS::Region}", "us-east-1"))
    # Then it has the EventBridge envelope Powertools' EventBridgeModel parses (events/expiry_scan/scheduled.json)
    assert set(payload) == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }
