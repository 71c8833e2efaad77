"""template.yaml <-> PynamoDB models: the deployed tables have the keys and indexes the code queries.

Also covers devtools.local_tables, which builds the local (moto / DynamoDB Local) tables from the same template.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import boto3
import pytest
from devtools.cfn import resources_of_type
from devtools.local_tables import LocalTableError, create_tables
from moto import mock_aws

from usercredits.adapters.dynamodb.credits_table import EXPIRY_INDEX_ATTRIBUTES, HoldItem, LotItem
from usercredits.adapters.dynamodb.tables import TABLE_MODELS

TABLES = sorted(TABLE_MODELS)


def _keys(schema: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {(key["AttributeName"], key["KeyType"]) for key in schema}


def _attributes(definitions: Sequence[Mapping[str, Any]]) -> set[tuple[str, str]]:
    return {(attr["AttributeName"], attr["AttributeType"]) for attr in definitions}


def _indexes(
    indexes: Sequence[Mapping[str, Any]] | None, name_key: str
) -> dict[str, tuple[set[Any], str, frozenset[str]]]:
    """Index name -> (key schema, projection type, projected attributes), from CloudFormation (IndexName) or
    PynamoDB (index_name)."""
    found = {}
    for index in indexes or []:
        projection = index.get("Projection") or index.get("projection") or {}
        found[index[name_key]] = (
            _keys(index.get("KeySchema") or index["key_schema"]),
            projection["ProjectionType"],
            frozenset(projection.get("NonKeyAttributes") or ()),
        )
    return found


@pytest.fixture(scope="module")
def template_tables(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return resources_of_type("AWS::DynamoDB::Table", template)


def test_every_table_has_a_model_and_every_model_a_table(template_tables: dict[str, dict[str, Any]]) -> None:
    assert sorted(template_tables) == TABLES


@pytest.mark.parametrize("logical_id", TABLES)
def test_table_key_schema_matches_model(logical_id: str, template_tables: dict[str, dict[str, Any]]) -> None:
    # Given the template's table and the PynamoDB model's schema
    properties = template_tables[logical_id]["Properties"]
    schema = TABLE_MODELS[logical_id]._get_schema()
    # Then the primary keys and the attribute definitions are the same
    assert _keys(properties["KeySchema"]) == _keys(schema["key_schema"])
    assert _attributes(properties["AttributeDefinitions"]) == _attributes(schema["attribute_definitions"])


@pytest.mark.parametrize("logical_id", TABLES)
def test_table_indexes_match_model(logical_id: str, template_tables: dict[str, dict[str, Any]]) -> None:
    # Given the template's table and the PynamoDB model's schema
    properties = template_tables[logical_id]["Properties"]
    schema = TABLE_MODELS[logical_id]._get_schema()
    # Then both declare the same GSIs and LSIs: names, keys and projection types
    assert _indexes(properties.get("GlobalSecondaryIndexes"), "IndexName") == _indexes(
        schema["global_secondary_indexes"], "index_name"
    )
    assert _indexes(properties.get("LocalSecondaryIndexes"), "IndexName") == _indexes(
        schema["local_secondary_indexes"], "index_name"
    )


@pytest.mark.parametrize("logical_id", TABLES)
def test_table_ttl_attribute_is_the_models_ttl(logical_id: str, template_tables: dict[str, dict[str, Any]]) -> None:
    # Given the template's TTL setting
    ttl = template_tables[logical_id]["Properties"]["TimeToLiveSpecification"]
    # Then TTL is on and uses the model's TTLAttribute, stored as "ttl"
    model = TABLE_MODELS[logical_id]
    ttl_attribute = model._ttl_attribute()
    assert ttl_attribute is not None
    assert ttl == {"AttributeName": "ttl", "Enabled": True}
    assert ttl_attribute.attr_name == "ttl"


@pytest.mark.parametrize("logical_id", TABLES)
def test_table_is_on_demand_recoverable_encrypted_and_retained(
    logical_id: str, template_tables: dict[str, dict[str, Any]]
) -> None:
    resource = template_tables[logical_id]
    properties = resource["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert TABLE_MODELS[logical_id].Meta.billing_mode == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    # encrypted with the AWS-owned key (free; SSEEnabled false) unless a customer-managed key's ARN is given
    assert properties["SSESpecification"] == {
        "Fn::If": [
            "HasTableKmsKey",
            {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": {"Ref": "TableKmsKeyArn"}},
            {"SSEEnabled": False},
        ]
    }
    assert properties["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert resource["DeletionPolicy"] == "Retain"
    assert resource["UpdateReplacePolicy"] == "Retain"
    # CloudFormation names the tables (the functions get the names through the env), so a stack can be replaced.
    assert "TableName" not in properties


def test_the_expiry_index_projects_all_the_scan_reads() -> None:
    # Given every attribute of the items the expiry scan reads whole from ByExpiry (lots and holds)
    not_projected = {"pk", "sk", "expiryBucket", "expiresAt", "ttl", "paymentIntentId", "groupEntry"}
    for model in (LotItem, HoldItem):
        names = {attribute.attr_name for attribute in model.get_attributes().values()} - not_projected
        # Then the index projects each of them (a lot or hold read from it is whole), and a group's name and balance
        assert names <= set(EXPIRY_INDEX_ATTRIBUTES), model.__name__
    assert {"userId", "offerGroup", "balance"} <= set(EXPIRY_INDEX_ATTRIBUTES)
    assert not {"journal", "purchases"} & set(EXPIRY_INDEX_ATTRIBUTES)


def test_table_protection_and_key_parameters(template: dict[str, Any]) -> None:
    # Given the parameters the tables use
    parameters, conditions = template["Parameters"], template["Conditions"]
    # Then deletion protection is on unless turned off, and the key is the AWS-owned one unless an ARN is given
    assert parameters["TableDeletionProtection"]["Default"] == "true"
    assert parameters["TableDeletionProtection"]["AllowedValues"] == ["true", "false"]
    assert parameters["TableKmsKeyArn"]["Default"] == ""
    assert conditions["HasTableKmsKey"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "TableKmsKeyArn"}, ""]}]}


# ----------------------------------------------------------------------------------- devtools.local_tables on moto
@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


def test_local_tables_create_the_models_schema(dynamodb: Any) -> None:
    # Given an empty engine
    # When the template's tables are created under the env's names
    created = create_tables(dynamodb)
    # Then each local table has exactly the model's keys and indexes, and TTL on "ttl"
    assert sorted(created) == TABLES
    for logical_id, table_name in created.items():
        described = dynamodb.describe_table(TableName=table_name)["Table"]
        schema = TABLE_MODELS[logical_id]._get_schema()
        assert table_name == TABLE_MODELS[logical_id].Meta.table_name
        assert _keys(described["KeySchema"]) == _keys(schema["key_schema"])
        assert _indexes(described.get("GlobalSecondaryIndexes"), "IndexName") == _indexes(
            schema["global_secondary_indexes"], "index_name"
        )
        assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")


def test_local_tables_are_idempotent(dynamodb: Any) -> None:
    # Given tables created once
    first = create_tables(dynamodb)
    # When they are created again
    second = create_tables(dynamodb)
    # Then nothing fails and nothing new appears
    assert first == second
    assert sorted(dynamodb.list_tables()["TableNames"]) == sorted(first.values())


def test_local_tables_take_explicit_names(dynamodb: Any) -> None:
    created = create_tables(dynamodb, {"CreditsTable": "credits-explicit"})
    assert created == {"CreditsTable": "credits-explicit"}
    assert dynamodb.list_tables()["TableNames"] == ["credits-explicit"]


def test_local_tables_reject_an_existing_table_with_other_keys(dynamodb: Any) -> None:
    # Given a table named like the credits table but shaped like the customers table
    create_tables(dynamodb, {"CustomersTable": "clash"})
    # When the credits table is created under that name
    # Then the mismatch is reported instead of silently reusing the wrong table
    with pytest.raises(LocalTableError, match="other keys or indexes"):
        create_tables(dynamodb, {"CreditsTable": "clash"})


def test_local_tables_reject_unknown_logical_ids(dynamodb: Any) -> None:
    with pytest.raises(LocalTableError, match="not tables of the template"):
        create_tables(dynamodb, {"OrdersTable": "orders"})


def test_local_tables_need_the_env_names(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUSTOMERS_TABLE_NAME")
    with pytest.raises(LocalTableError, match="CUSTOMERS_TABLE_NAME is not set"):
        create_tables(dynamodb)
