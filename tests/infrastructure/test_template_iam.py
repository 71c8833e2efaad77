"""Least-privilege DynamoDB access: each function may call exactly the DynamoDB actions its code can reach.

What a function can reach is read from the code, not run: the project modules its handler imports (lazy imports
included, ``devtools.import_graph``), and in those of ``usercredits.adapters.dynamodb`` the PynamoDB calls that need
an IAM action of their own (a transaction's delete needs ``DeleteItem``, ``batch_get`` needs ``BatchGetItem``, ...).
"""

from __future__ import annotations

import ast
from typing import Any

import pytest
from devtools.import_graph import import_graph, project_modules

from tests.infrastructure.conftest import FunctionConfig, dynamodb_grants, policy_statements
from usercredits.settings import SETTINGS_BY_FUNCTION

#: What every function that uses a table needs: reads, conditional writes and transactions (TransactWriteItems is
#: authorised action by action: PutItem, UpdateItem, DeleteItem, ConditionCheckItem).
BASE_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
}
#: PynamoDB methods (model, index or transaction) that need an IAM action beyond ``BASE_ACTIONS``.
CALLS_NEEDING = {
    "delete": "dynamodb:DeleteItem",
    "delete_item": "dynamodb:DeleteItem",
    "batch_get": "dynamodb:BatchGetItem",
    "batch_write": "dynamodb:BatchWriteItem",
    "scan": "dynamodb:Scan",
    "describe_table": "dynamodb:DescribeTable",
}
ADAPTERS = "usercredits.adapters.dynamodb"


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for module in graph.get(todo.pop(), ()):
            if module not in seen:
                seen.add(module)
                todo.append(module)
    return seen


def derived_actions(folder: str) -> set[str]:
    """The DynamoDB actions the function's code can call."""
    paths = project_modules()
    actions = set(BASE_ACTIONS)
    for module in _reachable(import_graph(), f"{folder}.handler"):
        if not module.startswith(ADAPTERS):
            continue
        for node in ast.walk(ast.parse(paths[module].read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in CALLS_NEEDING:
                actions.add(CALLS_NEEDING[node.func.attr])
    return actions


@pytest.fixture(scope="module")
def derived() -> dict[str, set[str]]:
    return {folder: derived_actions(folder) for folder in SETTINGS_BY_FUNCTION}


@pytest.mark.parametrize("folder", sorted(SETTINGS_BY_FUNCTION))
def test_each_function_may_call_exactly_what_its_code_calls(
    folder: str, functions: dict[str, FunctionConfig], derived: dict[str, set[str]]
) -> None:
    # Given the DynamoDB actions granted on each table the function uses
    config = functions[folder]
    grants = dynamodb_grants(config)
    # Then on the table: exactly those its code calls; on the indexes: Query only
    for table, granted in grants.items():
        assert granted["table"] == derived[folder], f"{config.logical_id} on {table}"
        assert granted.get("index", {"dynamodb:Query"}) == {"dynamodb:Query"}, f"{config.logical_id} on {table}"


def test_no_function_scans_or_batch_writes(functions: dict[str, FunctionConfig], derived: dict[str, set[str]]) -> None:
    # The code has neither (the expiry scan reads its index with Query); the template's CRUD policy templates gave both
    for folder, config in functions.items():
        assert not {"dynamodb:Scan", "dynamodb:BatchWriteItem"} & derived[folder]
        assert not [policy for policy in config.prop("Policies") or [] if "DynamoDBCrudPolicy" in str(policy)]


def test_derivation_finds_what_is_there() -> None:
    # The credits writers close lots and holds (a transaction's delete) and read lots in batches
    assert {"dynamodb:DeleteItem", "dynamodb:BatchGetItem"} <= derived_actions("consumption")
    # and the publisher reaches no DynamoDB call at all (the stream brings its items)
    assert derived_actions("event_publisher") == BASE_ACTIONS


@pytest.mark.parametrize("folder", sorted(SETTINGS_BY_FUNCTION))
def test_the_table_key_is_usable_only_through_dynamodb(folder: str, functions: dict[str, FunctionConfig]) -> None:
    # Given the function's statements on the customer-managed key (present only when TableKmsKeyArn is set)
    statements: list[dict[str, Any]] = [
        s for s in policy_statements(functions[folder]) if s.get("Resource") == {"Ref": "TableKmsKeyArn"}
    ]
    config = functions[folder]
    if not dynamodb_grants(config) and folder != "event_publisher":
        assert statements == []
        return
    # Then a function using a table may use the key, through DynamoDB only (the publisher: decrypt its stream)
    assert len(statements) == 1
    (policy,) = [p for p in config.prop("Policies") if "Fn::If" in p and p["Fn::If"][1]["Statement"] == statements]
    assert policy["Fn::If"][0] == "HasTableKmsKey"
    if folder != "event_publisher":
        assert "kms:ViaService" in str(statements[0]["Condition"])
