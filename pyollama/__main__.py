"""``python -m pyollama`` = the ``pyollama`` command."""
from __future__ import annotations

import sys

from pyollama.cli import main

if __name__ == "__main__":
    sys.exit(main())
