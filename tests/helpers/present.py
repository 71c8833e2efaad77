"""``present``: a value the test expects to be there, narrowed from its Optional type."""

from __future__ import annotations


def present[T](value: T | None) -> T:
    """``value``, failing the test (not with an AttributeError later) when it is None."""
    assert value is not None
    return value
