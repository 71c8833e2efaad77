"""Logger and Metrics singletons shared by every function (service name and namespace come from the env).

No Powertools Tracer: it imports the X-Ray SDK, which builds two botocore clients at import (~175 ms per cold start,
measured); the functions keep ``Tracing: Active`` so Lambda still records its own segments.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger()
metrics = Metrics()
