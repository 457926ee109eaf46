"""Side-by-side benchmarks against llama.cpp's own tools from the same pinned build (not tests)."""


def require_matplotlib() -> None:
    """Fail before a long run, not after it, when ``--png`` cannot be written."""
    import importlib.util
    import sys

    if importlib.util.find_spec("matplotlib") is None:
        sys.exit("--png needs matplotlib: pip install -e '.[bench]'")
