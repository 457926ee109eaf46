"""LLM: the library-level API — load a GGUF, generate text as a stream, embed.

    llm = LLM("model.gguf", num_ctx=4096)
    gen = llm.generate("Why is the sky blue?", num_predict=64, temperature=0)
    for piece in gen:
        print(piece.text, end="", flush=True)
    print(gen.done_reason, gen.eval_count, gen.eval_duration)

One sequence (seq 0) per LLM; a new prompt reuses the longest prefix already in the KV cache
(`cache=False` re-evaluates everything). Multi-sequence batching lives in pyollama.runner.

Why this is not a one-slot ``runner.batcher.BatchLoop``: LLM is the surface for Python code that samples
by itself — it owns ``ctx`` and the positions, so a caller can prefill, read logits, choose a token with
its own sampler and decode it (tests/engine/test_sampler.py does exactly that). A BatchLoop owns the
positions, the slot's cached tokens and the sampling of every sequence; sharing its context with a caller
would mean exposing that state. The generation loop here is the short one (sample, detokenize, stop
strings, decode); the detokenizer, stop matcher and sampler are the same objects BatchLoop uses.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from pyollama import _native
from pyollama.engine.detok import Detokenizer
from pyollama.engine.sampling import SamplingParams, TokenSampler
from pyollama.engine.stops import StopMatcher
from pyollama.errors import InvalidRequest

DEFAULT_NUM_CTX = 4096
DEFAULT_NUM_BATCH = 512


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading tokens two sequences share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def trim_kv(mem, seq_id: int, keep: int, held: int, n_swa: int, *, stale: bool = False) -> int:
    """Keep the first ``keep`` cells of sequence ``seq_id`` (which holds ``held`` tokens, and cells past them
    when ``stale``) and drop the rest; returns how many are kept. 0, with the sequence cleared, when the
    memory cannot drop a partial range (recurrent state) or a sliding window no longer holds the cells the
    next position attends to (checked before any removal, as llama-server does; an empty window, -1,
    holds none)."""
    if keep and n_swa:
        pos_min = mem.seq_pos_min(seq_id)
        if pos_min < 0 or pos_min > max(0, keep - n_swa):
            keep = 0
    if (keep < held or stale) and not mem.seq_rm(seq_id, keep, -1):
        keep = 0
    if not keep:
        mem.seq_rm(seq_id, -1, -1)
    return keep


def pooling_is_none(model: _native.Model) -> bool:
    """Causal LMs carry no pooling type: the GGUF key is absent or 0."""
    return model.meta(f"{model.arch}.pooling_type") in (None, "0")


def l2_normalize(rows: np.ndarray) -> None:
    """Normalize each row in place (an all-zero row stays zero)."""
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    np.divide(rows, norms, out=rows, where=norms > 0)


def generation_limits(opts: dict) -> tuple[int, list[str]]:
    """num_predict (-1 = until EOG/context end; null counts as unset) and the stop strings of an
    Ollama options dict."""
    n = opts.get("num_predict")
    stop = opts.get("stop") or []
    return (-1 if n is None else int(n)), ([stop] if isinstance(stop, str) else list(stop))


def default_threads() -> int:
    """Cores this process may run on (Ollama: physical cores; oversubscribing hurts decode)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@dataclass
class Piece:
    """One generated token and the text it released (may be '' while text is held back for a
    partial UTF-8 character or a possible stop string)."""

    token: int
    text: str


class Generation:
    """An in-progress generation: iterate for Pieces; afterwards the stats are filled in.
    Durations are nanoseconds, as in Ollama's API."""

    def __init__(self, llm: LLM, tokens: list[int], sampling: SamplingParams, num_predict: int,
                 stop: Sequence[str], cache: bool):
        self.llm = llm
        self.prompt_tokens = tokens
        self.sampling = sampling
        self.num_predict = num_predict
        self.stop = list(stop)
        self.cache = cache
        self.tokens: list[int] = []
        self.text = ""
        self.done = False
        self.done_reason: str | None = None
        self.prompt_eval_count = len(tokens)
        self.prompt_cached = 0
        self.prompt_eval_duration = 0
        self.eval_count = 0
        self.eval_duration = 0
        self.total_duration = 0
        self._it = self._run()

    def __iter__(self) -> Iterator[Piece]:
        return self._it

    def __next__(self) -> Piece:
        return next(self._it)

    def result(self) -> Generation:
        """Run to the end (if not already) and return self."""
        for _ in self._it:
            pass
        return self

    def close(self) -> None:
        """Stop early (e.g. the client went away)."""
        self._it.close()

    def _run(self) -> Iterator[Piece]:
        llm = self.llm
        t0 = time.perf_counter_ns()
        sampler = TokenSampler(self.sampling, llm.model, llm.n_ctx)
        detok = Detokenizer(llm.vocab.token_to_piece, llm._pieces)
        stops = StopMatcher(self.stop)
        ctx, batch = llm.ctx, llm._batch
        try:
            self.prompt_cached = llm._prefill(self.prompt_tokens, self.cache)
            sampler.accept_prompt(self.prompt_tokens)
            ctx.synchronize()           # an asynchronous backend (GPU, RPC worker) may still be computing
            t1 = time.perf_counter_ns()
            self.prompt_eval_duration = t1 - t0
            pos = len(self.prompt_tokens)
            vocab = llm.vocab
            matched = None
            while True:
                token = sampler.sample(ctx, -1)
                if vocab.is_eog(token):
                    self.done_reason = "stop"
                    break
                self.tokens.append(token)
                llm._cached.append(token)
                self.eval_count += 1
                text, matched = stops.feed(detok.feed(token))
                self.text += text
                if matched is not None:
                    self.done_reason = "stop"
                    if text:
                        yield Piece(token, text)
                    break
                yield Piece(token, text)
                if 0 <= self.num_predict <= self.eval_count or pos >= llm.n_ctx:
                    self.done_reason = "length"
                    break
                batch.reset()
                batch.add(token, pos, 0, True)
                ctx.decode(batch)
                pos += 1
            if matched is None:
                # Generation ended for another reason: what was held back is ordinary text.
                tail = stops.flush() + detok.flush()
                if tail:
                    self.text += tail
                    yield Piece(-1, tail)
        except GeneratorExit:
            self.done_reason = self.done_reason or "cancel"
            raise
        finally:
            self.eval_duration = time.perf_counter_ns() - t0 - self.prompt_eval_duration
            self.total_duration = time.perf_counter_ns() - t0
            self.done = True


class LLM:
    """A loaded model with one context.

    Load options use Ollama's names: num_ctx (clamped to the model's trained context),
    num_batch, num_gpu (layers to offload, -1 = all that fit/auto), num_thread, use_mmap,
    main_gpu; plus flash_attn ('auto'/'on'/'off'), kv_cache_type ('f16', 'q8_0', 'q4_0') and
    embedding (create the context for embeddings).
    Thread-safety: one generation at a time per LLM.
    """

    def __init__(self, path, *, num_ctx: int | None = DEFAULT_NUM_CTX, num_batch: int = DEFAULT_NUM_BATCH,
                 num_gpu: int = -1, num_thread: int | None = None, use_mmap: bool = True,
                 main_gpu: int = 0, flash_attn="auto", kv_cache_type: str = "f16",
                 embedding: bool = False, pooling: str | None = None, progress=None):
        t0 = time.perf_counter_ns()
        self.model = _native.Model(path, n_gpu_layers=num_gpu, use_mmap=use_mmap, main_gpu=main_gpu,
                                   progress=progress)
        self.vocab = self.model.vocab
        train = self.model.n_ctx_train
        n_ctx = num_ctx if num_ctx else (train or DEFAULT_NUM_CTX)
        if train > 0:
            n_ctx = min(n_ctx, train)
        if num_batch <= 0:
            raise InvalidRequest(f"num_batch must be positive, not {num_batch}")
        threads = num_thread or default_threads()
        self.embedding = embedding
        if embedding and pooling is None:
            pooling = "mean" if pooling_is_none(self.model) else None
        # Encoders see the whole input in one micro-batch: size it to the context.
        ubatch = n_ctx if embedding else num_batch
        self.ctx = _native.Context(self.model, n_ctx=n_ctx, n_batch=max(num_batch, ubatch) if embedding else num_batch,
                                   n_ubatch=ubatch, n_threads=threads, flash_attn=flash_attn,
                                   type_k=kv_cache_type, type_v=kv_cache_type, embeddings=embedding,
                                   pooling=pooling)
        self.n_ctx = self.ctx.n_ctx
        self.n_batch = self.ctx.n_batch
        self._batch = _native.Batch(self.n_batch, 1)
        self._cached: list[int] = []
        self._pieces: dict[int, bytes] = {}        # token → bytes, shared by every generation
        self.load_duration = time.perf_counter_ns() - t0

    def close(self) -> None:
        self._batch.close()
        self.ctx.close()
        self.model.close()

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- text <-> tokens -------------------------------------------------------------------------
    def tokenize(self, text: str, *, add_special: bool = True, parse_special: bool = True) -> list[int]:
        """Prompt text → tokens. parse_special=True because prompts come from templates."""
        return self.vocab.tokenize(text, add_special=add_special, parse_special=parse_special)

    def detokenize(self, tokens: Sequence[int]) -> str:
        return self.vocab.detokenize(tokens)

    # --- generation ------------------------------------------------------------------------------
    def generate(self, prompt: str | Sequence[int], *, options: dict | None = None, num_predict: int | None = None,
                 stop: Sequence[str] | None = None, cache: bool = True, add_special: bool = True,
                 **sampling) -> Generation:
        """Start generating from a prompt (text, or tokens). Options: Ollama's sampling options
        (temperature, top_k, top_p, min_p, typical_p, repeat_last_n, repeat_penalty,
        presence_penalty, frequency_penalty, seed, …), num_predict (-1 = until EOG/context end)
        and stop strings; given as keywords or an Ollama `options` dict."""
        opts = dict(options or {})
        opt_predict, opt_stop = generation_limits(opts)
        num_predict = opt_predict if num_predict is None else num_predict
        stop = opt_stop if stop is None else [stop] if isinstance(stop, str) else stop
        params = SamplingParams.from_options(opts, **sampling)
        tokens = list(prompt) if not isinstance(prompt, str) else self.tokenize(prompt, add_special=add_special)
        if not tokens:
            raise InvalidRequest("the prompt is empty (no tokens)")
        if len(tokens) >= self.n_ctx:
            raise InvalidRequest(f"the prompt is {len(tokens)} tokens, more than the context of "
                                 f"{self.n_ctx} tokens allows (num_ctx)")
        return Generation(self, tokens, params, num_predict, stop, cache)

    def complete(self, prompt: str | Sequence[int], **kw) -> Generation:
        """generate() run to the end."""
        return self.generate(prompt, **kw).result()

    def _prefill(self, tokens: list[int], cache: bool) -> int:
        """Bring the KV cache of seq 0 to `tokens` and leave logits for the last one; returns how
        many tokens came from the cache."""
        # Re-evaluate at least the last token: its logits are needed.
        keep = min(common_prefix(self._cached, tokens), len(tokens) - 1) if cache else 0
        mem = self.ctx.memory
        if keep == 0 or not mem.seq_rm(0, keep, -1):
            mem.clear()
            keep = 0
        self._cached = tokens[:keep]
        batch = self._batch
        for start in range(keep, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            batch.reset()
            batch.add_sequence(chunk, start, 0, output_last=start + len(chunk) == len(tokens))
            self.ctx.decode(batch)
            self._cached.extend(chunk)
        return keep

    # --- embeddings ------------------------------------------------------------------------------
    def embed(self, inputs: str | Sequence[str], *, normalize: bool = True, truncate: bool = True) -> np.ndarray:
        """Embeddings, one row per input (float32), L2-normalized unless normalize=False.
        Inputs longer than the context are cut to fit when truncate=True, else rejected."""
        if not self.embedding:
            raise InvalidRequest("this LLM was loaded without embedding=True")
        texts = [inputs] if isinstance(inputs, str) else list(inputs)
        n_out = self.model.n_embd_out
        out = np.empty((len(texts), n_out), np.float32)
        encoder_only = self.model.has_encoder and not self.model.has_decoder
        batch = _native.Batch(self.n_ctx, 1)
        try:
            for row, text in enumerate(texts):
                tokens = self.tokenize(text, parse_special=False)
                if len(tokens) > self.n_ctx:
                    if not truncate:
                        raise InvalidRequest(f"input {row} is {len(tokens)} tokens, longer than the context "
                                             f"of {self.n_ctx}")
                    tokens = tokens[:self.n_ctx]
                if not tokens:
                    raise InvalidRequest(f"input {row} is empty")
                self.ctx.memory.clear()
                batch.reset()
                batch.add_sequence(tokens, 0, 0, output_all=True)
                (self.ctx.encode if encoder_only else self.ctx.decode)(batch)
                out[row] = self.ctx.embeddings_seq(0)
        finally:
            batch.close()
            self._cached = []
        if normalize:
            l2_normalize(out)
        return out
