"""The shared kernel: what both halves (credits and subscriptions) build on: money, ids, cycles, the clock and the
base model. It imports nothing from either half."""
