"""Development-only tools (local runner, DynamoDB Local, template checks, benchmark). Never shipped to Lambda."""
