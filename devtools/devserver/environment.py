"""What the functions need around them locally: their environment, DynamoDB (an endpoint or DynamoDB Local), the
template's tables and the demo catalog."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from devtools.jwt_tokens import DEFAULT_SECRET
from devtools.lambda_context import REGION

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS_DIR = ROOT / "functions"
SHARED_DIR = ROOT / "shared"
DEMO_CATALOG = ROOT / "devtools" / "demo" / "wonderai.yaml"
DEFAULT_PORT = 3000
DEFAULT_DYNAMODB_PORT = 8000


def local_environment(
    events_endpoint: str | None = None, clock_file: str | None = None, stripe_api_base: str | None = None
) -> dict[str, str]:
    """The variables the functions need locally; ``configure_environment`` applies them without overriding yours.

    ``clock_file``: the test clock's state file (``LOCAL_CLOCK_FILE``), when the caller serves one (the dev server);
    ``stripe_api_base``: the Stripe simulation's URL (``LOCAL_STRIPE_API_BASE``), when the caller runs one.
    """
    env = {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "CREDITS_TABLE_NAME": "user-credits-credits-local",
        "CUSTOMERS_TABLE_NAME": "user-credits-customers-local",
        "EVENT_BUS_NAME": "user-credits-local",
        "PAYMENT_PROVIDER": "local",
        "DEFAULT_CURRENCY": "usd",
        "LOCAL_WEBHOOK_SECRET": "whsec_local",
        "LOCAL_JWT_SECRET": DEFAULT_SECRET,
        "POWERTOOLS_SERVICE_NAME": "user-credits",
        "POWERTOOLS_METRICS_NAMESPACE": "UserCredits",
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "POWERTOOLS_TRACE_DISABLED": "true",
        # EMF blobs after every request drown the request log; set it to false to see them.
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    if events_endpoint:
        env["AWS_ENDPOINT_URL_EVENTBRIDGE"] = events_endpoint  # botocore: AWS_ENDPOINT_URL_<service id "EventBridge">
    if clock_file:
        env["LOCAL_CLOCK_FILE"] = clock_file
    if stripe_api_base:
        env["LOCAL_STRIPE_API_BASE"] = stripe_api_base
    return env


def configure_environment(
    dynamodb_endpoint: str,
    events_endpoint: str | None = None,
    clock_file: str | None = None,
    stripe_api_base: str | None = None,
) -> None:
    """Point boto3/PynamoDB at ``dynamodb_endpoint`` and set every other variable that is not set yet.

    Must run before ``usercredits`` or any handler is imported. Real AWS credentials in the environment are replaced
    by fake ones: nothing local should ever reach an AWS account.
    """
    os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    env = local_environment(events_endpoint, clock_file, stripe_api_base)
    # The simulation this process runs, never another one named in the shell.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "LOCAL_STRIPE_API_BASE"):
        if name in env:
            os.environ[name] = env.pop(name)
    for name, value in env.items():
        os.environ.setdefault(name, value)
    for path in (str(SHARED_DIR), str(FUNCTIONS_DIR)):
        if path not in sys.path:
            sys.path.insert(0, path)


def prepare_tables_and_catalog(catalog: Path = DEMO_CATALOG) -> int:
    """Create the template's tables (if missing) and load ``catalog``; return the number of offers loaded."""
    import boto3

    from devtools.catalog import load_catalog
    from devtools.local_tables import create_tables

    client = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    create_tables(client)
    return load_catalog(str(catalog))


@contextlib.contextmanager
def dynamodb_endpoint() -> Iterator[tuple[str, bool]]:
    """``AWS_ENDPOINT_URL_DYNAMODB`` if set, else a DynamoDB Local started on ``DYNAMODB_PORT`` for the duration."""
    if endpoint := os.environ.get("AWS_ENDPOINT_URL_DYNAMODB"):
        yield endpoint, False
        return
    from devtools.dynamodb_local import running_dynamodb_local

    with running_dynamodb_local(int(os.environ.get("DYNAMODB_PORT") or DEFAULT_DYNAMODB_PORT)) as endpoint:
        yield endpoint, True


def quiet_warnings() -> None:
    """Silence two warnings that would follow every request: the short default HS256 secret, and Powertools
    reminding that a request published no metric (metrics are off locally, see ``local_environment``)."""
    from jwt.warnings import InsecureKeyLengthWarning

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
