"""SnapStart in template.yaml: the API functions serve traffic from published versions that are snapshotted when the
``SnapStart`` parameter is on (the default), and the callers invoke those versions, never ``$LATEST``."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infrastructure.conftest import FunctionConfig

API_FUNCTIONS = ["ordering", "consumption", "customers", "stripe_webhook"]


def test_the_parameter_turns_snapstart_on_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["SnapStart"]
    assert (parameter["Default"], sorted(parameter["AllowedValues"])) == ("on", ["off", "on"])
    assert template["Conditions"]["UsesSnapStart"] == {"Fn::Equals": [{"Ref": "SnapStart"}, "on"]}


@pytest.mark.parametrize("folder", API_FUNCTIONS)
def test_an_api_function_is_published_and_snapshotted(folder: str, functions: dict[str, FunctionConfig]) -> None:
    config = functions[folder]
    # SnapStart applies to published versions only: the alias is what the API and the URL invoke.
    assert config.prop("AutoPublishAlias") == "live"
    assert config.prop("SnapStart") == {"ApplyOn": {"Fn::If": ["UsesSnapStart", "PublishedVersions", "None"]}}
    # Not compatible with SnapStart: provisioned concurrency, EFS, more than 512 MB of ephemeral storage.
    assert config.prop("ProvisionedConcurrencyConfig") is None
    assert config.prop("FileSystemConfigs") is None
    assert (config.prop("EphemeralStorage") or {"Size": 512})["Size"] <= 512


def test_the_api_routes_and_the_webhook_url_invoke_the_published_alias(template: dict[str, Any]) -> None:
    for name, resource in template["Resources"].items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        http_events = [event for event in (props.get("Events") or {}).values() if event["Type"] == "HttpApi"]
        if http_events or "FunctionUrlConfig" in props:
            # SAM points HttpApi integrations and the Function URL at the AutoPublishAlias of their function.
            assert props.get("AutoPublishAlias") == "live", f"{name} serves callers from $LATEST"


def test_the_other_functions_keep_a_standard_init(functions: dict[str, FunctionConfig]) -> None:
    # The scan and the publisher have no caller waiting on their cold start: no snapshot to pay for.
    for folder in ("expiry_scan", "event_publisher"):
        assert functions[folder].prop("SnapStart") is None
