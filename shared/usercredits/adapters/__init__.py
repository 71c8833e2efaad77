"""Adapters: DynamoDB repositories, payment gateways and the event publisher behind the domain's ports."""
