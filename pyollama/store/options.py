"""The runtime option table (``options`` in the API = ``PARAMETER`` in a Modelfile), docs/contract.md §3.

One row per option: name → type and default. The server validates request ``options`` with it, the
Modelfile parser types ``PARAMETER`` values with it, and the scheduler reads ``runner`` to know which
options force a runner reload (docs/contract.md §4).

Defaults are Ollama's; ``None`` means "unset / decided at run time" (``num_ctx`` comes from
``OLLAMA_CONTEXT_LENGTH`` or the VRAM tier, ``stop`` from the model, ``draft_num_predict`` from whether a
draft model exists, ``main_gpu``/``use_mmap`` are auto, ``num_parallel`` from ``OLLAMA_NUM_PARALLEL``).
Rows marked ``extension`` are pyollama's own and not in Ollama's table.

Thread-safety: immutable data and pure functions.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pyollama.config import parse_bool

OptionType = Literal["int", "float", "bool", "string", "string[]"]


@dataclass(frozen=True)
class Option:
    name: str
    type: OptionType
    default: Any
    runner: bool = False     # changing it reloads the runner (docs/contract.md §4)
    note: str = ""
    extension: bool = False  # pyollama's own: not in Ollama's table (docs/contract.md §3)
    # Range of an int option: what the C field under it holds (int32 unless noted), so a value that
    # cannot reach llama.cpp intact is a clear error here rather than an overflow deep in the engine.
    lo: int = -(1 << 31)
    hi: int = (1 << 31) - 1


OPTIONS: dict[str, Option] = {o.name: o for o in (
    Option("num_ctx", "int", None, True,
           "OLLAMA_CONTEXT_LENGTH, else VRAM tier: <24 GiB 4096, 24-48 GiB 32768, >=48 GiB 262144; min 4"),
    Option("num_batch", "int", 512, True),
    Option("num_gpu", "int", -1, True, "layers to offload; -1 auto, 0 CPU only"),
    Option("main_gpu", "int", None, True),
    Option("use_mmap", "bool", None, True),
    Option("num_thread", "int", 0, True, "0: the runtime decides"),
    Option("num_keep", "int", 4),
    Option("seed", "int", -1, note="-1: random", lo=-1, hi=(1 << 32) - 1),
    Option("num_predict", "int", -1, note="-1: unbounded"),
    Option("top_k", "int", 40),
    Option("top_p", "float", 0.9),
    Option("min_p", "float", 0.0),
    Option("typical_p", "float", 1.0),
    Option("repeat_last_n", "int", 64, note="0 off, -1 num_ctx"),
    Option("temperature", "float", 0.8),
    Option("repeat_penalty", "float", 1.0),
    Option("presence_penalty", "float", 0.0),
    Option("frequency_penalty", "float", 0.0),
    Option("stop", "string[]", None, note="from the model; one PARAMETER stop line per string"),
    Option("draft_num_predict", "int", None, True, "4 if a draft model exists, else 0"),
    # Per-model parallel slots (Ollama only has the server-wide OLLAMA_NUM_PARALLEL; ollama/ollama#4894).
    # Unset here so the scheduler falls back to that variable; a different value needs another runner.
    Option("num_parallel", "int", None, True, "OLLAMA_NUM_PARALLEL; 1 for embedding models", extension=True),
    # llama.cpp's --tensor-split: how the offloaded layers divide between the GPUs and RPC workers.
    Option("tensor_split", "string", None, True, 'shares per device in load order, e.g. "3,1"; unset: by free '
           "memory", extension=True),
)}

# Removed keys: old clients still send them. A Modelfile gets a deprecation warning, the API ignores them.
REMOVED_OPTIONS: frozenset[str] = frozenset({
    "penalize_newline", "low_vram", "f16_kv", "logits_all", "vocab_only", "use_mlock",
    "mirostat", "mirostat_tau", "mirostat_eta", "numa", "tfs_z",
})

RUNNER_OPTIONS: frozenset[str] = frozenset(n for n, o in OPTIONS.items() if o.runner)


class OptionError(ValueError):
    """A value that does not fit its option's type; the message says which and why."""


def _in_range(opt: Option, v: int) -> int:
    if not opt.lo <= v <= opt.hi:
        raise OptionError(f'option "{opt.name}" must be between {opt.lo} and {opt.hi}, not {v}')
    return v


_INT_RE = re.compile(r"[+-]?[0-9]+")
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def parse_text(name: str, text: str) -> Any:
    """Type a Modelfile ``PARAMETER`` value (Go ``strconv`` rules). ``stop`` gives a str (the caller
    accumulates the list). Raises KeyError for an unknown option, OptionError for a bad value."""
    opt = OPTIONS[name]
    if opt.type == "int":
        if not _INT_RE.fullmatch(text):
            raise OptionError(f"invalid int value for {name}: {text!r}")
        return _in_range(opt, int(text))
    if opt.type == "float":
        if not _FLOAT_RE.fullmatch(text):
            raise OptionError(f"invalid float value for {name}: {text!r}")
        return float(text)
    if opt.type == "bool":
        try:
            return parse_bool(text)
        except ValueError:
            raise OptionError(f"invalid bool value for {name}: {text!r}") from None
    return text


def coerce_json(name: str, value: Any) -> Any:
    """Check a JSON-decoded option value (API ``options``/``parameters``) and normalize it: ints accept
    integral numbers (truncated, as Ollama does), floats accept ints, ``stop`` accepts a string or a list
    of strings and always returns a list. Raises KeyError (unknown) or OptionError (wrong type)."""
    opt = OPTIONS[name]
    if opt.type == "int":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (isinstance(value, float) and not math.isfinite(value)):
            raise OptionError(f'option "{name}" must be of type integer')
        return _in_range(opt, int(value))
    if opt.type == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise OptionError(f'option "{name}" must be of type float')
        return float(value)
    if opt.type == "bool":
        if not isinstance(value, bool):
            raise OptionError(f'option "{name}" must be of type boolean')
        return value
    if opt.type == "string[]":
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise OptionError(f'option "{name}" must be of type array of strings')
    if not isinstance(value, str):
        raise OptionError(f'option "{name}" must be of type string')
    return value


def defaults() -> dict[str, Any]:
    """The options that have a fixed default (unset ones left out)."""
    return {n: o.default for n, o in OPTIONS.items() if o.default is not None}
