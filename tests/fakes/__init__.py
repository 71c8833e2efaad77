"""In-memory fakes of the ports, one module per concern, with the semantics of the real adapters (the one home of
the tests' fakes: unit tests run the use cases on them, integration tests borrow the clock and the gateway)."""
