"""The request mixes bench.serve drives both servers with, all greedy and streamed, prompts rendered here
in ChatML (the same text to both servers, sent raw):

* ``unique``: distinct short questions, closed loop (no prompt shares more than the template's head).
* ``chat``: more users than slots, each holding a multi-turn conversation whose history grows to ~2k
  tokens, with think time between turns — the way chat front-ends and agents use a server. A returning
  user's prompt is their whole history again; what it costs depends on where that history still is.
* ``shared``: one long document (~2k tokens) as the system prompt, short distinct questions about it.
* ``extract``: answers that copy long spans of the prompt (rewrite a function with one change).
* ``json``: structured output constrained by a JSON schema.

Texts come from a seeded generator: every run, and both servers, see the same prompts.
"""
from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

WORDS = ("river stone light market winter garden engine letter window harbor forest signal copper bridge "
         "lantern meadow silver station orchard canyon ribbon quarry thunder valley mirror compass velvet "
         "anchor meadow pepper saddle timber falcon marble cotton beacon glacier harvest").split()
VERBS = "carries holds turns follows shapes guards measures crosses feeds lifts gathers mends".split()
TOPICS = ["bridges", "volcanoes", "tea", "bicycles", "the moon", "rivers", "libraries", "trains", "bees",
          "glass", "maps", "clocks", "salt", "kites", "coral", "paper"]
QUESTIONS = ["Tell me about the history of {x}.", "Write a short poem about {x}.", "Explain how {x} works.",
             "Give three facts about {x}.", "Describe {x} to a child.", "What is the future of {x}?"]
PERSON_SCHEMA = {"type": "object", "properties": {
    "name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"},
    "skills": {"type": "array", "items": {"type": "string"}}}, "required": ["name", "age", "city", "skills"]}


def chatml(messages: list[tuple[str, str]]) -> str:
    return "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in messages) + "<|im_start|>assistant\n"


def prose(rng: random.Random, sentences: int) -> str:
    """Sentences of ~12 tokens each."""
    out = []
    for _ in range(sentences):
        a, b, c = rng.sample(WORDS, 3)
        out.append(f"The {a} {rng.choice(VERBS)} the {b} near the {c} every {rng.randint(2, 99)} days.")
    return " ".join(out)


@dataclass
class Job:
    prompt: str
    n: int                               # max tokens
    schema: dict[str, Any] | None = None


def unique(count: int, offset: int, n: int) -> list[Job]:
    return [Job(chatml([("user", QUESTIONS[i % len(QUESTIONS)].format(x=TOPICS[(i // len(QUESTIONS)) % len(TOPICS)])
                         + f" (#{i})")]), n) for i in range(offset, offset + count)]


def shared(count: int, offset: int, n: int) -> list[Job]:
    doc = prose(random.Random(7), 160)                      # ~2k tokens, the same in every round
    system = "Answer questions about this document.\n\n" + doc
    return [Job(chatml([("system", system), ("user", f"What does the {WORDS[i % len(WORDS)]} do? (#{i})")]), n)
            for i in range(offset, offset + count)]


def _function(rng: random.Random) -> str:
    lines = [f"def process_{rng.choice(WORDS)}(items, limit={rng.randint(2, 50)}):",
             '    """Collect the entries that pass every check."""', "    result = []"]
    for _ in range(14):
        w, v = rng.sample(WORDS, 2)
        lines += [f"    for {w} in items.get('{v}', []):",
                  f"        if {w}.{rng.choice(VERBS)}() > limit:",
                  f"            result.append(({w}.name, {w}.value * {rng.randint(2, 9)}))"]
    return "\n".join(lines + ["    return result"])


def extract(count: int, offset: int, n: int) -> list[Job]:
    jobs = []
    for i in range(offset, offset + count):
        code = _function(random.Random(100 + i))
        ask = ("Rewrite this function, renaming the variable `result` to `found`. Reply with the whole "
               f"function and nothing else.\n\n```python\n{code}\n```")
        jobs.append(Job(chatml([("user", ask)]), n))
    return jobs


def structured(count: int, offset: int, n: int) -> list[Job]:
    jobs = []
    for i in range(offset, offset + count):
        rng = random.Random(500 + i)
        who = (f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()} is {rng.randint(20, 70)} and lives in "
               f"{rng.choice(WORDS).title()}ton; they know {rng.choice(WORDS)}work and {rng.choice(WORDS)}craft.")
        jobs.append(Job(chatml([("user", f"Extract the person as JSON: {who}")]), n, PERSON_SCHEMA))
    return jobs


CLOSED_LOOP = {"unique": unique, "shared": shared, "extract": extract, "json": structured}


async def closed_loop(target: Any, client: Any, jobs: list[Job], conc: int) -> dict:
    """``conc`` clients send ``jobs`` back to back (each a new request as soon as its last finished)."""
    queue = list(reversed(jobs))
    ttft: list[float] = []
    itl: list[float] = []
    tokens = done = 0
    t0 = time.perf_counter()

    async def one_client() -> None:
        nonlocal tokens, done
        while queue:
            job = queue.pop()
            start = time.perf_counter()
            times, count, _ = await target.stream(client, job.prompt, job.n, job.schema)
            if times:
                ttft.append(times[0] - start)
                itl.extend(b - a for a, b in zip(times, times[1:]))
                tokens += count or len(times)
                done += 1

    await asyncio.gather(*(one_client() for _ in range(conc)))
    return {"tok_s": tokens / (time.perf_counter() - t0), "tokens": tokens, "done": done, "ttft": ttft, "itl": itl}


async def chat(target: Any, client: Any, users: int, turns: int, n: int, think: float, seed: int) -> dict:
    """``users`` concurrent conversations of ``turns`` turns; each turn's question is ~150 tokens and
    each user has a distinct ~400-token system prompt, so histories reach ~2k tokens. Between turns a
    user thinks for ``think`` s on average (seeded, exponential)."""
    ttft_first: list[float] = []
    ttft_return: list[float] = []
    itl: list[float] = []
    tokens = done = 0
    t0 = time.perf_counter()

    async def user(u: int) -> None:
        nonlocal tokens, done
        rng = random.Random(seed * 1000 + u)
        history = [("system", f"You are assistant #{u}. Background: " + prose(rng, 32))]
        for turn in range(turns):
            history.append(("user", f"Question {turn + 1}: " + prose(rng, 12) + " What does this mean?"))
            start = time.perf_counter()
            times, count, text = await target.stream(client, chatml(history), n, None)
            history.append(("assistant", text))
            if times:
                (ttft_return if turn else ttft_first).append(times[0] - start)
                itl.extend(b - a for a, b in zip(times, times[1:]))
                tokens += count or len(times)
                done += 1
            await asyncio.sleep(rng.expovariate(1 / think) if think > 0 else 0)

    await asyncio.gather(*(user(u) for u in range(users)))
    return {"tok_s": tokens / (time.perf_counter() - t0), "tokens": tokens, "done": done,
            "ttft": ttft_first + ttft_return, "ttft_first": ttft_first, "ttft_return": ttft_return, "itl": itl}
