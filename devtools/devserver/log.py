"""The dev server's log: one timestamped line per event on stderr."""

from __future__ import annotations

import sys
import time


def log(message: str) -> None:
    """Write ``message`` to stderr, with the time."""
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {message}\n")
    sys.stderr.flush()
