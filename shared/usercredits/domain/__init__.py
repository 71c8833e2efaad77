"""Domain: entities, pure rules and use cases. No I/O here; ports are passed in by the handlers."""
