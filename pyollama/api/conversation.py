"""One turn, surface-neutral: what ``/api/chat``, ``/api/generate``, ``/v1/chat/completions``,
``/v1/completions``, ``/v1/responses`` and ``/v1/messages`` all translate their request into, and the steps
they share. ``/api/generate`` and ``/v1/completions`` are turns with a ``prompt`` (``suffix``, ``system``,
``template``, ``raw`` and ``context`` apply then) instead of ``messages``, as Ollama maps completions to
generate.

    turn = ChatTurn(st, ChatJob(model=..., messages=[...], tools=[...], think=..., options={...}))
    await turn.find()                    # the stored model (404 before anything else)
    turn.check()                         # capabilities, thinking, images, grammar, options (400s)
    await turn.acquire(request)          # a runner (waits in the scheduler's queue; 499 if the client goes)
    text, tokens = await turn.render()   # the prompt with the model's history/SYSTEM, Ollama's truncation
    events = turn.start(t_start)         # Delta / Final events (pyollama.api.inference); releases the lease
    events = await turn.launch(request, t_start)    # or all five steps in one

Messages are in the native shape (``role``, ``content``, ``thinking``, ``tool_calls`` with object
arguments, ``tool_name``); tools in the OpenAI function shape. ``tool_choice`` is honoured by
constraining decoding (``pyollama.api.toolchoice``): ``none`` drops the tools, ``required`` / a name
force the template's tool-call syntax with a grammar. Ollama ignores ``tool_choice`` (#7778, #17921).

Thread-safety: one instance per request, used on the event loop.
"""
from __future__ import annotations

import re
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pyollama.api import body as B
from pyollama.api import images as I
from pyollama.api import prompt as P
from pyollama.api import toolchoice
from pyollama.api.inference import Delta, Final, OutputParser, in_thread
from pyollama.api.inference import generate as run
from pyollama.api.ndjson import Chunks
from pyollama.api.state import ServerState
from pyollama.engine.sampling import SamplingParams
from pyollama.errors import InvalidRequest
from pyollama.runner.types import SeqRequest
from pyollama.scheduler import Lease, plan
from pyollama.templates import ThinkingParser


@dataclass
class ChatJob:
    """A chat turn in native terms."""

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: str = "auto"            # "auto" | "none" | "required" | "function" (then tool_name)
    tool_name: str = ""
    think: bool | str | None = None
    drop_think: bool = False             # Anthropic: thinking on a model without it is dropped, not a 400
    format: str | dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    logprobs: bool = False
    top_logprobs: int = 0
    keep_alive: float | None = None
    truncate: bool = True
    shift: bool | None = None            # Ollama's `shift` (None: the model's default)
    # /api/generate and /v1/completions
    prompt: str | None = None            # the prompt (None: a chat of `messages`)
    suffix: str = ""                     # render the prompt as an insert (fill in the middle)
    system: str = ""                     # replaces the model's SYSTEM
    template: str = ""                   # a Go template that replaces the model's
    raw: bool = False                    # the prompt as is, no template
    context: list[int] = field(default_factory=list)    # a previous response's context: continued as tokens
    images: list[bytes] = field(default_factory=list)     # the prompt's images (messages carry their own)

    @property
    def forced_tool(self) -> bool:
        return bool(self.tools) and self.tool_choice in ("required", "function")


def strip_history_thinking(msgs: list[dict[str, Any]], rec: Any) -> list[dict[str, Any]]:
    """qwen3 and deepseek-r1: drop ``<think>`` blocks from assistant turns before the last user turn
    (Ollama's filterThinkTags)."""
    if rec.config.get("model_family") != "qwen3" and rec.name.parts[2] != "deepseek-r1":
        return msgs
    last_user = max((i for i, m in enumerate(msgs) if m["role"] == "user"), default=-1)
    out = []
    for i, m in enumerate(msgs):
        if m["role"] == "assistant" and i < last_user:
            p = ThinkingParser("<think>", "</think>")
            content = p.feed(m["content"]).content + p.finish().content
            m = {**m, "content": content}
        out.append(m)
    return out


def check_thinking(model: str, caps: list[str], think: bool | str | None) -> bool | str | None:
    """Thinking models think unless told not to; others refuse ``think: true`` (``false`` is fine)."""
    if "thinking" in caps:
        return True if think is None else think
    if B.think_on(think):
        raise InvalidRequest(f'"{model}" does not support thinking')
    return think


def check_images(rec: Any, caps: list[str], n: int, limit: int) -> None:
    if n and "vision" not in caps:
        raise InvalidRequest(f"{rec.name.full()} does not support vision: it has no projector to read images "
                             "(create it with its mmproj GGUF as a second FROM)")
    I.check_limit(n, limit)


def dedupe_bos(tokens: list[int], rec: Any) -> list[int]:
    """A template that writes the BOS text itself, tokenized with BOS added, starts with two BOS tokens;
    keep one (as llama.cpp's server does)."""
    bos = plan.header(rec.model_path).kv.get("tokenizer.ggml.bos_token_id")
    if len(tokens) >= 2 and tokens[0] == tokens[1] == bos:
        return tokens[1:]
    return tokens


def context_shift(requested: bool | None, model_path: Any) -> bool:
    """Ollama's ``shift``: what the request says, else on, except for deepseek2 models (whose compressed
    attention cache Ollama never shifts)."""
    if requested is not None:
        return requested
    return plan.header(model_path).kv.get("general.architecture") != "deepseek2"


def token_ids(value: Any, where: str, n_vocab: int) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise InvalidRequest(f'"{where}" must be an array of token ids')
    bad = [t for t in value if not 0 <= t < n_vocab]
    if bad:
        raise InvalidRequest(f"token {bad[0]} in {where} is out of range for a vocabulary of {n_vocab}")
    return list(value)


def vocab_size(rec: Any) -> int:
    tokens = plan.header(rec.model_path).kv.get("tokenizer.ggml.tokens")
    return len(tokens) if isinstance(tokens, list) else int(getattr(tokens, "count", 0) or 0)


def grammar_triggers(grammar: str | None, parser: OutputParser) -> tuple[str, ...]:
    """For a model that thinks, the constraint starts when thinking ends (as Ollama's two phases):
    a lazy grammar triggered by the closing tag, fed what follows it."""
    if grammar is None or parser.thinking is None:
        return ()
    return (rf"[\s\S]*?{re.escape(parser.thinking.closing)}\s*([\s\S]*)",)


class ChatTurn:
    def __init__(self, st: ServerState, job: ChatJob):
        self.st = st
        self.job = job
        self.rec: Any = None
        self.caps: list[str] = []
        self.think: bool | str | None = job.think
        self.tools: list[dict[str, Any]] = list(job.tools)
        self.grammar: str | None = None
        self.merged: dict[str, Any] = {}
        self.lease: Lease | None = None
        self.t_loaded = 0
        self.text = ""
        self.tokens: list[int] = []
        self.tmpl: P.ModelTemplate | None = None
        self.images: list[bytes] = []       # every image of the turn, by the number of its [img-N] mark

    async def find(self) -> Any:
        self.rec = await self.st.record(self.job.model)
        return self.rec

    def check(self) -> None:
        """Everything that can be refused before a model is loaded."""
        job, rec = self.job, self.rec
        if job.raw and (job.template or job.system or job.context):
            raise InvalidRequest("raw mode does not support template, system, or context")
        self.caps = caps = P.capabilities(rec)
        if "completion" not in caps:
            raise InvalidRequest(f'"{job.model}" does not support {"chat" if job.prompt is None else "generate"}')
        if job.tool_choice == "none":
            self.tools = []               # the model is not told about tools, so it answers in text
        if self.tools and "tools" not in caps:
            raise InvalidRequest(f"{rec.name.full()} does not support tools")
        if job.suffix and "insert" not in caps:
            raise InvalidRequest(f'"{job.model}" does not support insert')
        think = job.think
        if job.drop_think and "thinking" not in caps:
            think = None
        self.think = check_thinking(job.model, caps, think)
        check_images(rec, caps, I.count(job.messages, job.images), self.st.cfg.max_images)
        self.tmpl = P.model_template(rec, job.template)
        if job.forced_tool:
            self.grammar = toolchoice.grammar(self.tmpl.tool_tag(), self.tools,
                                              job.tool_name if job.tool_choice == "function" else "")
        else:
            self.grammar = B.grammar_for(job.format)
        self.merged = plan.merged_options(rec.params, job.options)
        SamplingParams.from_options(self.merged)          # a bad sampling value is a 400 before any load
        if job.context:
            job.context = token_ids(job.context, "context", vocab_size(rec))

    async def acquire(self, request: Request) -> Lease:
        self.st.vocabs.prefetch(self.rec.model_path)     # the tokenizer loads beside the runner
        self.lease = await self.st.lease(request, self.st.load_request(self.rec, self.job.options),
                                         self.job.keep_alive)
        self.t_loaded = time.perf_counter_ns()
        return self.lease

    def release(self) -> None:
        if self.lease is not None:
            self.lease.release()

    async def render(self) -> tuple[str, list[int]]:
        """The prompt and its tokens (needs the lease for the runner's context size; tokenizing is the
        server's own, with the model's vocabulary)."""
        assert self.lease is not None and self.tmpl is not None
        job, rec, tmpl = self.job, self.rec, self.tmpl
        vocabs = self.st.vocabs
        n_ctx = self.lease.entry.n_ctx
        await tmpl.prepare()

        ctx = job.context
        info = self.lease.entry.runner_info
        image_tokens = info.image_tokens if info is not None else 0

        async def piece(text: str, special: bool) -> list[int]:
            return await vocabs.tokenize(rec.model_path, text, special, True)

        async def tokenize(text: str) -> list[int]:
            # A previous response's context continues as tokens (exact, unlike Ollama's detokenize +
            # re-tokenize round trip, which loses special tokens); it already starts with any BOS.
            if P.surely_too_long(text, n_ctx):
                raise P.too_many_chars(text, n_ctx)
            if self.images:             # counted as the runner will place them
                return ctx + dedupe_bos(await I.layout(text, len(self.images), image_tokens, not ctx, piece), rec)
            return ctx + dedupe_bos(await piece(text, not ctx), rec)

        if job.prompt is not None:
            text, tokens = await self._render_prompt(tokenize, n_ctx)
            if ctx:
                text = await vocabs.detokenize(rec.model_path, ctx) + text
        else:
            msgs = job.messages
            history = list(rec.messages) + msgs
            if (not msgs or msgs[0]["role"] != "system") and rec.system:
                history.insert(0, {"role": "system", "content": rec.system})
            history = strip_history_thinking(history, rec)
            history, self.images = I.tag_messages(history)
            tools, think = self.tools or None, self.think
            text, tokens = await P.fit_chat(lambda m: tmpl.render_chat(m, tools, think), tokenize, history,
                                            n_ctx, job.truncate)
        self.text, self.tokens = text, tokens
        return text, tokens

    async def _render_prompt(self, tokenize: P.Tokenize, n_ctx: int) -> tuple[str, list[int]]:
        """/api/generate's prompt: as is (raw), as an insert (suffix), or as a user message after the
        system text and the model's MESSAGEs (not when continuing a context), fitted as a chat is."""
        job, rec, tmpl = self.job, self.rec, self.tmpl
        assert job.prompt is not None and tmpl is not None
        prompt, think = job.prompt, self.think
        self.images = list(job.images)
        if job.raw:
            prompt = I.tag_prompt(prompt, job.images)
            return prompt, await tokenize(prompt)
        if job.suffix:
            prompt = I.tag_prompt(prompt, job.images)
            text = await in_thread(lambda: tmpl.render_generate(prompt, suffix=job.suffix, think=think))
            return text, await tokenize(text)
        msgs: list[dict[str, Any]] = []
        sys_text = job.system or rec.system
        if sys_text:
            msgs.append({"role": "system", "content": sys_text})
        if not job.context:
            msgs += rec.messages
        msgs.append({"role": "user", "content": prompt, "images": job.images})
        msgs, _ = I.tag_messages(msgs)
        if job.template:             # a request template renders as is (Ollama's legacy path)
            text = await in_thread(tmpl.render_chat, msgs, None, think)
            return text, await tokenize(text)
        return await P.fit_chat(lambda m: tmpl.render_chat(m, None, think), tokenize, msgs, n_ctx, job.truncate)

    def parser(self) -> OutputParser:
        assert self.tmpl is not None
        thinking = (self.tmpl.thinking_parser(self.text, self.caps) if B.think_on(self.think) and not self.job.raw
                    else None)
        return OutputParser(thinking, self.tmpl.tool_parser(self.tools) if self.tools else None)

    def start(self, t_start: int) -> AsyncGenerator[Delta | Final, None]:
        """The generation's events; the lease is released when they end (or are closed)."""
        assert self.lease is not None
        job = self.job
        n_ctx = self.lease.entry.n_ctx
        if len(self.tokens) >= n_ctx:
            raise P.too_long(len(self.tokens), n_ctx)
        parser = self.parser()
        prompt: str | list[int] = self.tokens
        images: list[bytes] = []
        if self.images:             # the runner tokenizes around the images (libmtmd)
            prompt, images = I.for_runner(self.text, self.images)
        seq = SeqRequest(prompt=prompt, images=images, add_special=not job.context, options=self.merged,
                         grammar=self.grammar, grammar_triggers=grammar_triggers(self.grammar, parser),
                         logprobs=job.logprobs or job.top_logprobs > 0, top_logprobs=job.top_logprobs,
                         shift=context_shift(job.shift, self.rec.model_path))
        return run(self.lease, seq, parser, t_start=t_start, t_loaded=self.t_loaded, metrics=self.st.metrics)

    async def native(self, request: Request, t_start: int, *, empty: bool, debug: bool, stream: bool,
                     answer: Callable[[dict[str, Any]], dict[str, Any]],
                     chunk: Callable[[Delta | Final], dict[str, Any]],
                     aggregate: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> Response | Chunks:
        """A native route's turn (``/api/chat``, ``/api/generate``): an ``empty`` request with
        ``keep_alive: 0`` unloads the model, one without only loads it; ``_debug_render_only`` answers with
        the rendered prompt; else the turn is checked, rendered and started and its events become NDJSON
        chunks. The routes differ only in shape: ``answer`` builds the body of an answer without a
        generation from the fields that differ, ``chunk`` one chunk from an event."""
        await self.find()
        if empty and self.job.keep_alive == 0:
            await self.st.sched.expire(str(self.rec.model_path))
            return JSONResponse(answer({"done": True, "done_reason": "unload"}))
        self.check()
        await self.acquire(request)
        try:
            if empty:
                self.release()
                return JSONResponse(answer({"done": True, "done_reason": "load"}))
            text, _ = await self.render()
            if debug:
                self.release()
                return JSONResponse(answer({"done": False, "_debug_info": {"rendered_template": text,
                                                                           "image_count": len(self.images)}}))
            events = self.start(t_start)
        except BaseException:
            self.release()
            raise

        async def chunks() -> AsyncGenerator[dict[str, Any], None]:
            try:
                async for ev in events:
                    yield chunk(ev)
            finally:
                await events.aclose()

        return Chunks(chunks(), stream=stream, aggregate=aggregate, on_close=self.release)

    async def launch(self, request: Request, t_start: int) -> AsyncGenerator[Delta | Final, None]:
        """find + check + acquire + render + start, releasing the lease on any failure before the
        events exist (the compatible APIs' whole turn)."""
        await self.find()
        self.check()
        await self.acquire(request)
        try:
            await self.render()
            return self.start(t_start)
        except BaseException:
            self.release()
            raise
