"""``python -m devtools.devserver`` (``make run``): see the package's docstring."""

import sys

from devtools.devserver.server import main

if __name__ == "__main__":
    sys.exit(main())
