"""``python -m devtools.bench`` (``make bench``): see the package's docstring."""

import sys

from devtools.bench.main import main

# Guarded: the throughput part's worker processes (spawn) import the main module again.
if __name__ == "__main__":
    sys.exit(main())
