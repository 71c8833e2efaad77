"""Integration fixtures: the real ordering composition root against moto tables made from template.yaml."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from devtools.catalog import load_catalog
from devtools.lambda_context import LambdaContext

from tests.conftest import DEMO_CATALOG, http_event
from usercredits.settings import get_ordering_settings

Call = Callable[..., tuple[int, Any, dict[str, str]]]


@pytest.fixture
def ordering_api(moto_tables: None, lambda_context: LambdaContext) -> Iterator[Call]:
    """``call(base_event, **overrides) -> (status, json body, headers)`` through ordering's lambda_handler."""
    from ordering import handler

    handler.dependencies.cache_clear()
    get_ordering_settings.cache_clear()
    load_catalog(DEMO_CATALOG)

    def call(base: str, **overrides: Any) -> tuple[int, Any, dict[str, str]]:
        response = handler.lambda_handler(http_event(base, **overrides), lambda_context)
        raw = response.get("body") or ""
        if response.get("isBase64Encoded"):
            raw = base64.b64decode(raw).decode()
        return response["statusCode"], json.loads(raw) if raw else None, response.get("headers", {})

    yield call
    handler.dependencies.cache_clear()


@pytest.fixture
def credits_items(moto_tables: None) -> Callable[[], list[dict[str, Any]]]:
    """Every item of the credits table (to assert on what was, or was not, written)."""
    import os

    def scan() -> list[dict[str, Any]]:
        client = boto3.client("dynamodb")
        return client.scan(TableName=os.environ["CREDITS_TABLE_NAME"])["Items"]

    return scan


def item_kinds(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["itemType"]["S"] for item in items if item["pk"]["S"] != "CATALOG")


__all__ = ["Call", "item_kinds", "json"]


@pytest.fixture
def consumption_api(ordering_api: Call, lambda_context: Any) -> Iterator[Call]:
    """``call(base_event, **overrides)`` through consumption's lambda_handler (the demo catalog is loaded)."""
    from consumption import handler

    handler.dependencies.cache_clear()

    def call(base: str, **overrides: Any) -> tuple[int, Any, dict[str, str]]:
        response = handler.lambda_handler(http_event(base, **overrides), lambda_context)
        raw = response.get("body") or ""
        return response["statusCode"], json.loads(raw) if raw else None, response.get("headers", {})

    yield call
    handler.dependencies.cache_clear()
