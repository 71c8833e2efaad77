"""Create the template's DynamoDB tables on a local engine (moto, DynamoDB Local) from template.yaml itself.

The dev server, the tests and the benchmark create their tables here, so the local key schemas, GSIs, billing mode and
TTL are the deployed ones (and tests/infrastructure holds the template to the PynamoDB models)::

    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:8000")
    create_tables(client)                                   # names from CREDITS_TABLE_NAME / CUSTOMERS_TABLE_NAME
    create_tables(client, {"CreditsTable": "my-credits"})   # or explicit names (tables not named are skipped)

Deployment-only settings (point-in-time recovery, encryption, deletion policies) have no local meaning and are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from devtools.cfn import load_template, resources_of_type

TABLE_TYPE = "AWS::DynamoDB::Table"


class LocalTableError(RuntimeError):
    """A table cannot be created from the template, or an existing one does not match it."""


def table_env_vars(template: dict[str, Any] | None = None) -> dict[str, str]:
    """Logical id of each table -> the env var the functions get its name from (``{"CreditsTable": "CREDITS_..."}``).

    Read from ``Globals.Function.Environment`` and every function's ``Environment``: a variable whose value is
    ``!Ref <table>`` names that table.
    """
    template = template or load_template()
    tables = resources_of_type(TABLE_TYPE, template)
    environments = [template.get("Globals", {}).get("Function", {}).get("Environment", {})]
    environments += [
        fn.get("Properties", {}).get("Environment", {})
        for fn in resources_of_type("AWS::Serverless::Function", template).values()
    ]
    found: dict[str, str] = {}
    for environment in environments:
        for var, value in (environment.get("Variables") or {}).items():
            if isinstance(value, dict) and value.get("Ref") in tables:
                found.setdefault(value["Ref"], var)
    return found


def default_table_names(
    template: dict[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Logical id -> physical name, from the env vars the functions read (what the handlers will use locally)."""
    environ = os.environ if environ is None else environ
    names = {}
    for logical_id, var in table_env_vars(template).items():
        if not environ.get(var):
            raise LocalTableError(f"{var} is not set: cannot name the local {logical_id} (or pass names explicitly)")
        names[logical_id] = environ[var]
    return names


def create_table_request(properties: dict[str, Any], table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` arguments for one ``AWS::DynamoDB::Table``'s CloudFormation ``Properties``."""
    billing_mode = properties.get("BillingMode", "PROVISIONED")
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": properties["KeySchema"],
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "BillingMode": billing_mode,
    }
    if billing_mode == "PROVISIONED":
        request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
    for cfn_key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        indexes = properties.get(cfn_key) or []
        if indexes:
            keep = ("IndexName", "KeySchema", "Projection", "ProvisionedThroughput")
            request[cfn_key] = [{k: v for k, v in index.items() if k in keep} for index in indexes]
    if stream := properties.get("StreamSpecification"):
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    _reject_intrinsics(request, table_name)
    return request


def _reject_intrinsics(node: Any, table_name: str) -> None:
    if isinstance(node, dict):
        if any(key == "Ref" or key.startswith("Fn::") for key in node):
            raise LocalTableError(f"{table_name}: the template uses an intrinsic function in {node}; resolve it first")
        for value in node.values():
            _reject_intrinsics(value, table_name)
    elif isinstance(node, list):
        for value in node:
            _reject_intrinsics(value, table_name)


def _check_existing(client: Any, request: dict[str, Any]) -> None:
    """An existing table is fine if its keys and index names are the template's (else: stale local data)."""
    table = client.describe_table(TableName=request["TableName"])["Table"]

    def keys(schema: list[dict[str, str]]) -> set[tuple[str, str]]:
        return {(k["AttributeName"], k["KeyType"]) for k in schema}

    def index_names(described: list[dict[str, Any]] | None) -> set[str]:
        return {index["IndexName"] for index in described or []}

    if keys(table["KeySchema"]) != keys(request["KeySchema"]) or index_names(
        table.get("GlobalSecondaryIndexes")
    ) != index_names(request.get("GlobalSecondaryIndexes")):
        raise LocalTableError(
            f"table {request['TableName']} exists with other keys or indexes than template.yaml: delete it "
            "(or restart the in-memory DynamoDB Local)"
        )


def _enable_ttl(client: Any, table_name: str, attribute: str) -> None:
    current = client.describe_time_to_live(TableName=table_name).get("TimeToLiveDescription", {})
    if current.get("TimeToLiveStatus") in {"ENABLED", "ENABLING"} and current.get("AttributeName") == attribute:
        return
    try:
        client.update_time_to_live(
            TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": attribute}
        )
    except ClientError as exc:  # e.g. "TimeToLive is already enabled" racing another process
        if exc.response["Error"]["Code"] != "ValidationException":
            raise


def create_tables(
    client: Any,
    names: Mapping[str, str] | None = None,
    wait: bool = True,
    template: dict[str, Any] | None = None,
) -> dict[str, str]:
    """Create every ``AWS::DynamoDB::Table`` of the template that ``names`` names; existing matching tables are kept.

    Parameters
    ----------
    client
        A boto3 DynamoDB client (moto, DynamoDB Local, ...).
    names
        Logical id -> physical table name. Default: the functions' env vars (``CREDITS_TABLE_NAME``, ...).
    wait
        Wait until every table is ``ACTIVE``.
    template
        A parsed template (default: ``template.yaml`` through ``devtools.cfn.load_template``).

    Returns
    -------
    dict[str, str]
        Logical id -> physical name of the tables now present.
    """
    template = template or load_template()
    tables = resources_of_type(TABLE_TYPE, template)
    names = default_table_names(template) if names is None else names
    unknown = set(names) - set(tables)
    if unknown:
        raise LocalTableError(f"not tables of the template: {sorted(unknown)} (tables: {sorted(tables)})")

    created = {}
    for logical_id, table_name in names.items():
        properties = tables[logical_id]["Properties"]
        request = create_table_request(properties, table_name)
        try:
            client.create_table(**request)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
            _check_existing(client, request)
        if wait:
            client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        ttl = properties.get("TimeToLiveSpecification") or {}
        if ttl.get("Enabled") and ttl.get("AttributeName"):
            _enable_ttl(client, table_name, ttl["AttributeName"])
        created[logical_id] = table_name
    return created
