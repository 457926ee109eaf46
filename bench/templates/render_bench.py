"""Render time of a 50-message chat with tools (target: <= 2 ms per render, parse cached).

    .venv/bin/python bench/templates/render_bench.py [--n 2000]

Prints the median and p90 over N renders for a few template families, plus the one-off parse.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from pyollama.templates import render_chat  # noqa: E402
from pyollama.templates.gotemplate import GoTemplate  # noqa: E402

GOLDEN = ROOT / "tests" / "templates" / "golden"


def conversation(n: int = 50) -> tuple[list[dict], list[dict]]:
    tools = json.loads((GOLDEN / "shapes" / "tools.json").read_text())["tools"]
    msgs: list[dict] = [{"role": "system", "content": "You are a helpful assistant. Use tools when useful."}]
    i = 0
    while len(msgs) < n:
        i += 1
        msgs.append({"role": "user", "content": f"Question {i}: what is the weather in city {i}? " * 3})
        if i % 3 == 0:
            msgs.append({"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": f"City {i}", "unit": "celsius"}}}]})
            msgs.append({"role": "tool", "content": json.dumps({"temp": 10 + i, "sky": "clear"}),
                         "tool_name": "get_weather"})
        msgs.append({"role": "assistant", "content": f"Answer {i}: it is sunny and {10 + i} degrees. " * 2})
    return msgs[:n], tools


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    args = ap.parse_args()
    msgs, tools = conversation(50)
    for family in ("qwen2.5-tools", "llama3.1-tools", "qwen3-thinking", "chatml", "mistral-tools"):
        text = (GOLDEN / family / "template.gotmpl").read_text()
        t0 = time.perf_counter()
        GoTemplate(text)
        parse_ms = (time.perf_counter() - t0) * 1e3
        render_chat(text, msgs, tools)  # warm the cache
        times = []
        for _ in range(args.n):
            t0 = time.perf_counter()
            render_chat(text, msgs, tools)
            times.append((time.perf_counter() - t0) * 1e3)
        times.sort()
        print(f"{family:16s} 50 msgs + {len(tools)} tools: median {statistics.median(times):.3f} ms, "
              f"p90 {times[int(len(times) * 0.9)]:.3f} ms (parse once: {parse_ms:.2f} ms)")


if __name__ == "__main__":
    main()
