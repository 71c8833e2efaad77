"""Where the bench runs: the repository's paths, the process environment of its DynamoDB parts (nothing may reach
AWS), and a fresh in-memory DynamoDB Local with the template's tables."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from devtools.lambda_context import REGION

ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = ROOT / "events"
DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"
RESULTS_PATH = ROOT / "bench-results.json"
#: Where every AWS service but DynamoDB points during the bench: a closed port (nothing may reach AWS).
NOWHERE = "http://127.0.0.1:9"

#: Process environment of the DynamoDB part (set before anything imports ``usercredits``, overriding the caller's).
BENCH_ENV: dict[str, str] = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ENDPOINT_URL": NOWHERE,
    "CREDITS_TABLE_NAME": "user-credits-credits-bench",
    "CUSTOMERS_TABLE_NAME": "user-credits-customers-bench",
    "EVENT_BUS_NAME": "user-credits-bench",
    "PAYMENT_PROVIDER": "local",
    "DEFAULT_CURRENCY": "usd",
    "LOCAL_WEBHOOK_SECRET": "whsec_local",
    "CATALOG_CACHE_SECONDS": "3600",
    "POWERTOOLS_SERVICE_NAME": "ordering",
    "POWERTOOLS_METRICS_NAMESPACE": "UserCredits",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
    "POWERTOOLS_METRICS_DISABLED": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


def configure_environment(endpoint_url: str) -> None:
    """Env of the DynamoDB part (before ``usercredits`` is imported); the caller's AWS settings never apply."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        os.environ.pop(name, None)
    os.environ.update(BENCH_ENV)
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = endpoint_url
    for path in (ROOT / "functions", ROOT / "shared"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


@contextlib.contextmanager
def fresh_dynamodb_local() -> Iterator[str]:
    """An in-memory DynamoDB Local started for the ``with`` block, the environment pointed at it (before anything
    imports ``usercredits``) and the template's tables created; yields its endpoint URL."""
    from devtools.dynamodb_local import running_dynamodb_local

    with running_dynamodb_local() as endpoint_url:
        configure_environment(endpoint_url)
        import boto3

        from devtools.local_tables import create_tables
        from usercredits.adapters.dynamodb.tables import share_connections

        share_connections()  # PynamoDB may have connected to another engine earlier in this process
        create_tables(boto3.client("dynamodb", endpoint_url=endpoint_url))
        yield endpoint_url
