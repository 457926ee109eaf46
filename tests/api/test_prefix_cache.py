"""Issue 6: a second chat turn evaluates only the new tokens, and answers as a cold run does.

`prompt_eval_count` stays the whole prompt's length (as Ollama and OpenAI report it); the time
spent on the prompt is what shrinks. A fresh server (empty cache) gives the reference answer.
"""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.model, pytest.mark.slow]

OPTS = {"temperature": 0, "num_predict": 48, "num_ctx": 2048}
SYSTEM = ("You are a careful assistant. Answer in full sentences, mention the reasoning behind each "
          "answer, and keep a friendly tone. " * 6)


def _chat(server, messages):
    r = server.post("/api/chat", json={"model": "smollm2:135m", "messages": messages, "stream": False,
                                       "options": OPTS})
    assert r.status_code == 200, r.text
    return r.json()


def test_second_turn_reuses_the_prefix(serve):
    s = serve()
    turn1 = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is the capital of France?"}]
    first = _chat(s, turn1)
    turn2 = turn1 + [first["message"], {"role": "user", "content": "And of Germany?"}]
    second = _chat(s, turn2)

    cold = serve()                                   # nothing cached: the reference
    _chat(cold, [{"role": "user", "content": "warm-up: load the model"}])   # same load, no shared prefix
    reference = _chat(cold, turn2)

    assert second["message"]["content"] == reference["message"]["content"]
    assert second["prompt_eval_count"] == reference["prompt_eval_count"] > first["prompt_eval_count"]
    # only the new turn was evaluated: far less prompt time than re-reading the whole conversation
    assert second["prompt_eval_duration"] < 0.5 * reference["prompt_eval_duration"], (
        second["prompt_eval_duration"], reference["prompt_eval_duration"])
