"""Run one pull in a child process (the resume tests SIGKILL it): ``pull_child.py STORE NAME OPTIONS_JSON``.
Prints each progress event as a JSON line, and ``{"error": …}`` on failure (exit 1)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from pyollama.errors import PyollamaError
from pyollama.store import Store
from pyollama.store.registry import RegistryOptions, pull


def main() -> int:
    root, name, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    opts = RegistryOptions(**json.loads(raw))
    try:
        for ev in pull(Store(root), name, options=opts):
            print(json.dumps(ev), flush=True)
    except PyollamaError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
