"""Load a catalog file (YAML or JSON: ``{"offers": [Offer, ...], "groups": [GroupPolicy, ...]}``) into the table.

``python -m devtools.catalog FILE`` (``make load-catalog FILE=...``) upserts every offer through the same repository
the ordering function uses; with no table env set it targets the ``make run`` stack (DynamoDB Local on port 8000).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import yaml

LOCAL_DEFAULTS = {
    "CREDITS_TABLE_NAME": "user-credits-credits-local",
    "CUSTOMERS_TABLE_NAME": "user-credits-customers-local",
    "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:8000",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
}


def _read(path: str | Path) -> Any:
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)


def read_catalog(path: str | Path) -> list[dict[str, Any]]:
    """The offers of a catalog file, as plain dicts in the contract's camelCase."""
    data = _read(path)
    offers = data["offers"] if isinstance(data, dict) else data
    if not isinstance(offers, list):
        raise ValueError(f"{path}: expected a list of offers under 'offers'")
    return offers


def read_group_policies(path: str | Path) -> list[dict[str, Any]]:
    """The group policies (overdraft, low threshold) of a catalog file's optional ``groups`` list."""
    data = _read(path)
    return list(data.get("groups") or []) if isinstance(data, dict) else []


def load_catalog(path: str | Path) -> int:
    """Validate every offer and group policy of ``path`` (all or nothing) and upsert them; returns the offers."""
    from usercredits.adapters.dynamodb.catalog import DynamoCatalogRepository
    from usercredits.domain.models import GroupPolicy, Offer
    from usercredits.kernel.clock import SystemClock

    offers = [Offer.model_validate(raw) for raw in read_catalog(path)]
    policies = [GroupPolicy.model_validate(raw) for raw in read_group_policies(path)]
    repository, now = DynamoCatalogRepository(cache_seconds=0), SystemClock().now()
    for offer in offers:
        repository.put_offer(offer, now)
    for policy in policies:
        repository.put_group_policy(policy)
    return len(offers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", help="catalog file (.yaml, .yml or .json)")
    args = parser.parse_args()
    if "CREDITS_TABLE_NAME" not in os.environ:
        os.environ.update({key: value for key, value in LOCAL_DEFAULTS.items() if key not in os.environ})
    print(f"loaded {load_catalog(args.file)} offers into {os.environ['CREDITS_TABLE_NAME']}")


if __name__ == "__main__":
    main()
