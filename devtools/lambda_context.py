"""A stand-in for the Lambda context object: the dev server, ``devtools.invoke``, the bench and the tests pass it.

It has what Powertools (``Logger.inject_lambda_context``, metrics, idempotency) and the handlers read. Like Lambda's,
``get_remaining_time_in_millis`` counts down to a deadline ``timeout_seconds`` after the context was made: make one
context per invocation.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_SECONDS = 30


@dataclass
class LambdaContext:
    """The parts of the Lambda context object that Powertools and the handlers read."""

    function_name: str
    memory_limit_in_mb: int = DEFAULT_MEMORY_MB
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"{time.strftime('%Y/%m/%d')}/[{self.function_version}]local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
