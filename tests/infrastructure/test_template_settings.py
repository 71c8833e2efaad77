"""template.yaml <-> settings models: each function gets the env its settings need, and only the access it uses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.infrastructure.conftest import FunctionConfig, dynamodb_grants, fake_environment
from usercredits.settings import SETTINGS_BY_FUNCTION

FOLDERS = sorted(SETTINGS_BY_FUNCTION)


def _required(model: type[Any]) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def _policy_targets(config: FunctionConfig, policy_name: str, key: str) -> set[str]:
    """Logical ids referenced by ``key`` in every ``policy_name`` SAM policy template of the function."""
    targets = set()
    for policy in config.prop("Policies") or []:
        if isinstance(policy, dict) and policy_name in policy:
            value = policy[policy_name][key]
            assert isinstance(value, dict) and "Ref" in value, (
                f"{config.logical_id}: {policy_name} {key} must be a !Ref"
            )
            targets.add(value["Ref"])
    return targets


def _touches_secrets(config: FunctionConfig) -> bool:
    text = json.dumps(config.prop("Policies") or []).lower()
    return "secretsmanager" in text or ":ssm:" in text or "ssmparameter" in text or "ssm:getparameter" in text


def test_template_functions_match_settings_models(functions: dict[str, FunctionConfig]) -> None:
    # Given the functions of the template and the settings models of the code
    # Then each function folder has exactly one settings model and vice versa
    assert sorted(functions) == FOLDERS


@pytest.mark.parametrize("folder", FOLDERS)
def test_function_env_sets_every_required_setting(folder: str, functions: dict[str, FunctionConfig]) -> None:
    # Given the function's settings model
    model = SETTINGS_BY_FUNCTION[folder]
    # When Globals and the function's own Environment are merged
    env = functions[folder].env
    # Then every setting without a default is set
    assert _required(model) - set(env) == set()


@pytest.mark.parametrize("folder", FOLDERS)
def test_function_env_names_only_known_settings(folder: str, functions: dict[str, FunctionConfig]) -> None:
    # Given the function's env and its settings model
    known = set(SETTINGS_BY_FUNCTION[folder].model_fields)
    # Then every variable is a setting of the model or a Powertools variable (a typo would be silently ignored)
    unknown = {name for name in functions[folder].env if name not in known and not name.startswith("POWERTOOLS_")}
    assert unknown == set()


@pytest.mark.parametrize("folder", FOLDERS)
def test_function_env_validates_against_settings_model(
    folder: str, functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the env Lambda would set with the parameters' defaults
    env = fake_environment(functions[folder], template)
    # When the function's settings model reads it
    settings = SETTINGS_BY_FUNCTION[folder].model_validate(env)
    # Then it validates (e.g. DEFAULT_CURRENCY's pattern, PAYMENT_PROVIDER's choices) and names the function
    assert folder == settings.POWERTOOLS_SERVICE_NAME  # type: ignore[attr-defined]


def test_service_name_is_per_function_and_namespace_global(
    functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the Globals environment
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    # Then the metrics namespace is shared and the service name is each function's own
    assert "POWERTOOLS_METRICS_NAMESPACE" in globals_env
    assert "POWERTOOLS_SERVICE_NAME" not in globals_env
    names = [config.env.get("POWERTOOLS_SERVICE_NAME") for config in functions.values()]
    assert len(set(names)) == len(names) and None not in names


@pytest.mark.parametrize("folder", FOLDERS)
def test_table_env_vars_reference_tables_with_matching_dynamodb_policies(
    folder: str, functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the tables named in the function's env
    config = functions[folder]
    resources = template["Resources"]
    tables_in_env = set()
    for name, value in config.env.items():
        if name.endswith("_TABLE_NAME"):
            assert isinstance(value, dict) and "Ref" in value, f"{name} must be !Ref <table>"
            assert resources[value["Ref"]]["Type"] == "AWS::DynamoDB::Table", f"{name} must name a table"
            tables_in_env.add(value["Ref"])
    # When the DynamoDB policy templates of the function are read
    granted = (
        _policy_targets(config, "DynamoDBCrudPolicy", "TableName")
        | _policy_targets(config, "DynamoDBReadPolicy", "TableName")
        | set(dynamodb_grants(config))
    )
    # (a function fed by a table's stream uses that table through its event source mapping, not through the API)
    events = template["Resources"][config.logical_id]["Properties"].get("Events") or {}
    streamed = {
        event["Properties"]["Stream"]["Fn::GetAtt"][0] for event in events.values() if event["Type"] == "DynamoDB"
    }
    # Then the function may use exactly the tables it is told about
    assert granted | streamed == tables_in_env


@pytest.mark.parametrize("folder", FOLDERS)
def test_event_bus_env_matches_put_events_policy(
    folder: str, functions: dict[str, FunctionConfig], template: dict[str, Any]
) -> None:
    # Given the bus named in the function's env
    config = functions[folder]
    bus = config.env["EVENT_BUS_NAME"]
    assert template["Resources"][bus["Ref"]]["Type"] == "AWS::Events::EventBus"
    # Then it may put events on that bus, and only there
    assert _policy_targets(config, "EventBridgePutEventsPolicy", "EventBusName") == {bus["Ref"]}


@pytest.mark.parametrize("folder", FOLDERS)
def test_only_functions_with_a_stripe_secret_name_can_read_secrets(
    folder: str, functions: dict[str, FunctionConfig]
) -> None:
    # Given whether the function is told the Stripe secret's name
    config = functions[folder]
    has_secret = "STRIPE_SECRET_NAME" in config.env
    # Then it can read the secret exactly when it needs it (consumption and expiry_scan never)
    assert _touches_secrets(config) == has_secret
    if has_secret:
        assert config.env["STRIPE_SECRET_NAME"] == {"Ref": "StripeSecretName"}
        statements = [s for p in config.prop("Policies") for s in (p.get("Statement") or []) if isinstance(p, dict)]
        secret_statements = [s for s in statements if "secretsmanager" in json.dumps(s)]
        assert secret_statements, "expected an inline statement on the secret's ARN"
        for statement in secret_statements:
            assert statement["Action"] in ("secretsmanager:GetSecretValue", ["secretsmanager:GetSecretValue"])
            assert "${StripeSecretName}" in json.dumps(statement["Resource"])


def test_no_function_has_secret_values_in_its_env(functions: dict[str, FunctionConfig]) -> None:
    # Given every function's env
    # Then no variable looks like it carries a key or webhook secret (secrets live in Secrets Manager)
    for config in functions.values():
        for name, value in config.env.items():
            text = json.dumps(value)
            assert not any(marker in text for marker in ("sk_live", "sk_test", "rk_live", "whsec_")), name
            assert name != "LOCAL_WEBHOOK_SECRET", f"{config.logical_id}: the local webhook secret is dev-only"


def test_no_function_sets_the_local_test_clock(functions: dict[str, FunctionConfig], template: dict[str, Any]) -> None:
    # Given the Globals environment and every function's own (merged with Globals)
    globals_env = ((template.get("Globals") or {}).get("Function") or {}).get("Environment") or {}
    # Then none sets LOCAL_CLOCK_FILE: the test clock of `make run` never reaches a deployed stack (and the settings
    # refuse it in AWS Lambda, so a function given it would not start)
    assert "LOCAL_CLOCK_FILE" not in (globals_env.get("Variables") or {})
    for config in functions.values():
        assert "LOCAL_CLOCK_FILE" not in config.env, f"{config.logical_id} sets the local test clock"
        assert "AWS_EXECUTION_ENV" not in config.env, f"{config.logical_id}: AWS_EXECUTION_ENV is the runtime's"


def test_no_function_is_pointed_at_the_local_stripe_simulation(functions: dict[str, FunctionConfig]) -> None:
    # Given every function's env (merged with Globals)
    # Then none names the dev server's Stripe simulation: a deployed function's processor is Stripe
    for config in functions.values():
        assert "LOCAL_STRIPE_API_BASE" not in config.env, f"{config.logical_id} names the local Stripe simulation"
