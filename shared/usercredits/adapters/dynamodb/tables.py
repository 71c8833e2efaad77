"""Both tables' models by the logical id of their table in ``template.yaml`` (the tests and the dev server create the
tables from them), and the connections shared again after the models are pointed at another endpoint. The functions
import only the table module they use: ``credits_table`` or ``customers_table``."""

from __future__ import annotations

from pynamodb.models import Model

from usercredits.adapters.dynamodb.credits_table import CreditsItem
from usercredits.adapters.dynamodb.customers_table import CustomersItem
from usercredits.adapters.dynamodb.model_base import share_connection

#: Every table model, keyed by the logical id of its AWS::DynamoDB::Table resource in template.yaml.
TABLE_MODELS: dict[str, type[Model]] = {"CreditsTable": CreditsItem, "CustomersTable": CustomersItem}


def share_connections() -> None:
    """Give each table's models their table's one connection again (after a test points them elsewhere)."""
    for base in TABLE_MODELS.values():
        share_connection(base)
