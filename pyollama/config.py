"""Every environment variable pyollama's server reads, in one table, read once and typed.

Each setting is looked up as ``PYOLLAMA_<NAME>`` first and then as ``OLLAMA_<NAME>`` (so an existing
Ollama set-up keeps working); a few are pyollama-only. Values may be wrapped in quotes, which are
stripped (as Ollama's envconfig does). A value that does not parse is logged and the default is used,
again as Ollama does — a typo must not stop the server from starting.

    cfg = Config.from_env()          # once, at start-up
    cfg.keep_alive                   # seconds; math.inf = forever
    setting("MODELS")                # one variable, when it is needed (the store's defaults)
    for v in VARS: print(v.env_names, v.description)     # serve --help

Durations use Go's syntax (``golang.time.parse_duration``), shared by env values and ``keep_alive``.

Thread-safety: immutable data and pure functions.
"""
from __future__ import annotations

import ipaddress
import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyollama.golang.time import format_duration, parse_duration

log = logging.getLogger("pyollama.config")

DEFAULT_PORT = 11434
MAX_BODY = 32 * 1024 * 1024       # PYOLLAMA_MAX_BODY default; why this figure: its help text below

# --- Go syntax helpers -----------------------------------------------------------------------------
_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(text: str) -> bool:
    """Go's ``strconv.ParseBool``."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"invalid boolean {text!r}")


def clean(value: str | None) -> str:
    """Trim spaces and one layer of wrapping quotes (Ollama's envconfig does the same)."""
    return (value or "").strip().strip("\"'").strip()


# --- host ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HostPort:
    scheme: str
    host: str
    port: int

    @property
    def url(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{h}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (not a name that may resolve to one)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_host(text: str) -> HostPort:
    """``[scheme://]host[:port][/path]`` as ``OLLAMA_HOST`` takes it. The port defaults to 11434 without a
    scheme, 80 for ``http://`` and 443 for ``https://``; an empty host is 127.0.0.1."""
    v = clean(text)
    scheme, sep, rest = v.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, rest = "http", v
    elif scheme == "http":
        default_port = 80
    elif scheme == "https":
        default_port = 443
    rest = rest.split("/", 1)[0]
    host, port_text = rest, ""
    if rest.startswith("["):                         # [::1]:8080 or [::1]
        end = rest.find("]")
        if end < 0:
            raise ValueError(f"invalid host {text!r}")
        host, tail = rest[1:end], rest[end + 1:]
        if tail.startswith(":"):
            port_text = tail[1:]
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
    port = default_port
    if port_text:
        if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError(f"invalid port specified in OLLAMA_HOST: {port_text!r}")
        port = int(port_text)
    return HostPort(scheme or "http", host or "127.0.0.1", port)


# --- the table ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Var:
    """One setting: its name without prefix, a parser from the cleaned text, its default, its help."""

    name: str
    parse: Callable[[str], Any]
    default: Any
    description: str
    ollama: bool = True      # also read as OLLAMA_<name>

    @property
    def env_names(self) -> tuple[str, ...]:
        return (f"PYOLLAMA_{self.name}", f"OLLAMA_{self.name}") if self.ollama else (f"PYOLLAMA_{self.name}",)


def _keep_alive(text: str) -> float:
    """Seconds or a Go duration; negative = forever (math.inf)."""
    try:
        secs = float(int(text))
    except ValueError:
        secs = parse_duration(text)
    return math.inf if secs < 0 else secs


def _load_timeout(text: str) -> float:
    secs = _keep_alive(text)
    return math.inf if secs <= 0 else secs


def _nonneg_int(text: str) -> int:
    n = int(text)
    if n < 0:
        raise ValueError("must not be negative")
    return n


def _pos_int(text: str) -> int:
    n = int(text)
    if n <= 0:
        raise ValueError("must be positive")
    return n


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]*)?)\s*([kmgt]i?b?|b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1 << 10, "ki": 1 << 10, "m": 1000**2, "mb": 1000**2,
               "mib": 1 << 20, "mi": 1 << 20, "g": 1000**3, "gb": 1000**3, "gib": 1 << 30, "gi": 1 << 30,
               "t": 1000**4, "tb": 1000**4, "tib": 1 << 40, "ti": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``"2147483648"``, ``"2GiB"``, ``"512 MB"``, ``"1.5g"`` (decimal units, binary with i)."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise ValueError("must be a size in bytes, optionally with a unit such as MiB or GB")
    return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])


DRAFTERS = ("ngram-simple", "ngram-map-k", "ngram-map-k4v", "ngram-mod")


def _speculative(text: str) -> str:
    t = text.lower().replace(" ", "")
    if t in ("off", "0", "false", "none"):
        return "off"
    bad = [n for n in t.split(",") if n not in DRAFTERS]
    if bad:
        raise ValueError(f"must be off or drafters from {', '.join(DRAFTERS)} (comma separated), not {bad[0]!r}")
    return t


def _draft_max(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 1024:
        raise ValueError("must be between 1 and 1024")
    return n


def _flash(text: str) -> str:
    if text.lower() == "auto":
        return "auto"
    return "on" if parse_bool(text) else "off"


def _kv_type(text: str) -> str:
    t = text.lower()
    if t not in ("f16", "q8_0", "q4_0"):
        raise ValueError("must be f16, q8_0 or q4_0")
    return t


def _debug(text: str) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        pass
    try:
        return 1 if parse_bool(text) else 0
    except ValueError:
        return 1          # Ollama: any other non-empty value turns debugging on


def _truthy(text: str) -> bool:
    """Ollama's NOPRUNE/NOHISTORY style: any non-empty value is on, except an explicit false."""
    return text not in _FALSE


def _origins(text: str) -> tuple[str, ...]:
    return tuple(o.strip() for o in text.split(",") if o.strip())


def _rpc_servers(text: str) -> tuple[str, ...]:
    from pyollama.rpc import parse_endpoints

    return parse_endpoints(text)


def _runner_mode(text: str) -> str:
    t = text.lower()
    if t not in ("process", "thread"):
        raise ValueError("must be process or thread")
    return t


VARS: tuple[Var, ...] = (
    Var("HOST", parse_host, parse_host(""),
        "Address to listen on, [scheme://]host[:port] (default 127.0.0.1:11434)"),
    Var("MODELS", lambda t: Path(t).expanduser(), None,
        "Model store directory (default ~/.pyollama/models)"),
    Var("KEEP_ALIVE", _keep_alive, 300.0,
        'How long a model stays loaded after its last request: duration or seconds, <0 = forever (default "5m")'),
    Var("CONTEXT_LENGTH", _nonneg_int, 0,
        "Default num_ctx (default 0: 4096, or 32768/262144 with 24/48 GiB of VRAM)"),
    Var("NUM_PARALLEL", _pos_int, 1,
        "Parallel requests per loaded model (default 1; PARAMETER num_parallel overrides per model)"),
    Var("MAX_LOADED_MODELS", _nonneg_int, 0,
        "Maximum number of loaded models (default 0: 3 per GPU, 3 on CPU)"),
    Var("MAX_QUEUE", _pos_int, 512,
        "Requests that may wait for a model before the server answers 503 (default 512)"),
    Var("ORIGINS", _origins, (),
        "Extra allowed CORS origins, comma separated, * wildcards allowed"),
    Var("FLASH_ATTENTION", _flash, "auto",
        "Flash attention: 1 on, 0 off (default auto)"),
    Var("KV_CACHE_TYPE", _kv_type, "",
        "KV cache type: f16, q8_0 or q4_0; quantized types need flash attention (default f16, or q8_0/q4_0 "
        "when that lets every layer fit on the GPU)"),
    Var("GPU_OVERHEAD", _nonneg_int, 0,
        "Bytes of VRAM to keep free on each GPU (default 0)"),
    Var("SCHED_SPREAD", parse_bool, False,
        "Always spread a model across all GPUs"),
    Var("LOAD_TIMEOUT", _load_timeout, 300.0,
        'How long a model load may take before it is abandoned; <=0 = forever (default "5m")'),
    Var("RUNNER_TIMEOUT", _load_timeout, 60.0,
        'How long a runner process may stay silent (it reports several times a second) before it is '
        'killed as hung and its requests fail; <=0 = never (default "1m")', ollama=False),
    Var("STEP_TIMEOUT", _load_timeout, 600.0,
        'How long one batch step (a prompt chunk, or one token for every active request) may run before '
        'the runner is killed as hung; <=0 = never (default "10m")', ollama=False),
    Var("NOPRUNE", _truthy, False,
        "Do not prune unused blobs at start-up"),
    Var("NOHISTORY", _truthy, False,
        "Do not keep readline history (CLI)"),
    Var("DEBUG", _debug, 0,
        "Log more: 1 debug, 2 trace"),
    Var("API_KEY", str, "",
        "Require 'Authorization: Bearer <key>' on every request (default: no key)", ollama=False),
    Var("MAX_BODY", _pos_int, MAX_BODY,
        "Largest JSON request body in bytes, checked while reading; blob uploads are exempt (default "
        "32 MiB: a 128k-token chat is ~0.5 MiB of JSON, the rest is room for base64 images, ~20 photos of "
        "1 MiB; a body costs ~4x its size in server memory while it is decoded)", ollama=False),
    Var("MAX_IMAGES", _pos_int, 16,
        "Most images in one request, all messages together (default 16)", ollama=False),
    Var("MAX_IMAGE_PIXELS", _pos_int, 50_000_000,
        "Largest image a model is given, in pixels after decoding (default 50 million: a 48-megapixel "
        "photo fits; each pixel costs 3 bytes while the image is prepared)", ollama=False),
    Var("SPARE_RUNNER", parse_bool, True,
        "Keep one runner process started ahead of need (Python up, libraries loaded; ~70 MB of memory), so a "
        "model load does not wait for a process to start; 0 starts each runner on demand (default on)",
        ollama=False),
    Var("METRICS", parse_bool, True,
        "Serve GET /metrics (Prometheus text format; behind PYOLLAMA_API_KEY when that is set); 0 turns it "
        "off (default on)", ollama=False),
    Var("UI", parse_bool, True,
        "Serve the chat page at /ui (its files load without PYOLLAMA_API_KEY: they hold no data, and the "
        "page sends the key you give it with every API call); 0 turns it off (default on)", ollama=False),
    Var("SPECULATIVE", _speculative, "off",
        "Self-speculative decoding: drafts from n-grams of each sequence's own prompt and output, verified "
        "in one batch (pays when answers copy the prompt). off, or upstream's drafters: ngram-simple, "
        "ngram-map-k, ngram-map-k4v, ngram-mod (default off: on a CPU a draft verified in a batch uses "
        "other kernels than one token at a time, so greedy outputs may part from those without). With a "
        "model that has a draft model (DRAFT), these are asked first and the draft model where they "
        "have nothing", ollama=False),
    Var("DRAFT_MAX", _draft_max, 8,
        "Longest draft with PYOLLAMA_SPECULATIVE (default 8; each sequence adapts below it)", ollama=False),
    Var("CACHE_RAM", parse_size, None,
        "Host memory per loaded model for KV states of earlier prompts, reused when a prompt starts the "
        "same way (a returning conversation); bytes or a size such as 2GiB, 0 = off (default: an eighth "
        "of this machine's memory, at most 8 GiB)", ollama=False),
    Var("RUNNER", _runner_mode, "process",
        "Where loaded models run: process (a child per model, default) or thread (in the server)",
        ollama=False),
    Var("RPC_SERVERS", _rpc_servers, (),
        "RPC workers (pyollama worker, or llama.cpp's rpc-server from the same pin) whose devices hold model "
        "layers like GPUs: host:port, comma separated. One that does not answer is skipped with a warning; "
        "each serves one loaded model at a time. The protocol has no authentication or encryption: "
        "trusted networks or tunnels only", ollama=False),
    Var("CPU_VARIANT", str, "",
        "In a build with every CPU variant (PYOLLAMA_CPU_VARIANTS=all, the container image): use this one "
        "(e.g. haswell, icelake, zen4) instead of the best this CPU reports; read when the engine loads. "
        "The same variant sums in the same order on every machine that runs it; on a VM that advertises "
        "AMX without running it, the sapphirerapids variant faults and another must be named",
        ollama=False),
)
VAR_BY_NAME: dict[str, Var] = {v.name: v for v in VARS}


def _raw(var: Var, env: Mapping[str, str]) -> tuple[str, str] | None:
    for name in var.env_names:
        value = clean(env.get(name))
        if value:
            return name, value
    return None


_UNSET: Any = object()


def _lookup(var: Var, env: Mapping[str, str], warnings: list[str]) -> Any:
    """``var``'s parsed value, or ``_UNSET`` when it is not set or does not parse (noted in ``warnings``)."""
    found = _raw(var, env)
    if found is None:
        return _UNSET
    name, text = found
    try:
        return var.parse(text)
    except ValueError as e:
        warnings.append(f"invalid setting, ignoring: {name}={text!r} ({e})")
        return _UNSET


def setting(name: str, env: Mapping[str, str] | None = None) -> Any:
    """One variable as :meth:`Config.from_env` reads it (its default when unset or unparsable), for code
    that needs a single value when it is used rather than a whole Config: the model store's root and
    ``NOPRUNE``, which also serve ``Store()`` outside the server."""
    var = VAR_BY_NAME[name]
    warnings: list[str] = []
    value = _lookup(var, os.environ if env is None else env, warnings)
    for w in warnings:
        log.warning("%s", w)
    return var.default if value is _UNSET else value


# Ollama's built-in CORS allowlist (envconfig.AllowedOrigins): loopback and "any" addresses with or
# without a port, and the schemes desktop shells and editors use.
_BUILTIN_ORIGINS: tuple[str, ...] = tuple(
    f"{scheme}://{host}{port}"
    for host in ("localhost", "127.0.0.1", "0.0.0.0")
    for scheme in ("http", "https")
    for port in ("", ":*")
) + ("app://*", "file://*", "tauri://*", "vscode-webview://*", "vscode-file://*")


@dataclass(frozen=True)
class Config:
    """The server's settings. Build with :meth:`from_env`; tests pass keyword overrides."""

    host: HostPort = field(default_factory=lambda: parse_host(""))
    models: Path | None = None
    keep_alive: float = 300.0
    context_length: int = 0
    num_parallel: int = 1
    max_loaded_models: int = 0
    max_queue: int = 512
    origins: tuple[str, ...] = ()
    flash_attention: str = "auto"
    kv_cache_type: str = ""         # "": f16, quantized by the scheduler when that fits the GPU
    gpu_overhead: int = 0
    sched_spread: bool = False
    load_timeout: float = 300.0
    runner_timeout: float = 60.0
    step_timeout: float = 600.0
    noprune: bool = False
    nohistory: bool = False
    debug: int = 0
    api_key: str = ""
    max_body: int = MAX_BODY
    max_images: int = 16
    max_image_pixels: int = 50_000_000
    runner: str = "process"
    cache_ram: int | None = None    # None: sized to the machine (scheduler/plan.py)
    metrics: bool = True
    spare_runner: bool = True
    ui: bool = True
    cpu_variant: str = ""
    rpc_servers: tuple[str, ...] = ()
    speculative: str = "off"
    draft_max: int = 8
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Read every variable once. Unparsable values are reported in ``warnings`` and ignored."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        warnings: list[str] = []
        for var in VARS:
            value = _lookup(var, env, warnings)
            if value is not _UNSET:
                values[var.name.lower()] = value
        if values.get("kv_cache_type", "f16") not in ("", "f16") and values.get("flash_attention") == "off":
            warnings.append("OLLAMA_KV_CACHE_TYPE needs flash attention, which is off: using f16")
            values["kv_cache_type"] = "f16"
        for w in warnings:
            log.warning("%s", w)
        values.update(overrides)
        return cls(**values, warnings=tuple(warnings))

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        """``OLLAMA_ORIGINS`` followed by the built-in allowlist."""
        return self.origins + _BUILTIN_ORIGINS

    def max_runners(self, n_gpus: int) -> int:
        """``OLLAMA_MAX_LOADED_MODELS``, or 3 per GPU (3 on CPU) when it is 0."""
        return self.max_loaded_models or 3 * max(1, n_gpus)

    def default_num_ctx(self, total_vram: int) -> int:
        """``OLLAMA_CONTEXT_LENGTH``, else Ollama's VRAM tiers (thresholds a little under 24/48 GiB,
        as Ollama's, so a "24 GB" card that reports slightly less still counts)."""
        if self.context_length:
            return self.context_length
        gib = 1 << 30
        if total_vram >= 47 * gib:
            return 262144
        if total_vram >= 23 * gib:
            return 32768
        return 4096

    def describe(self) -> list[tuple[str, str, str]]:
        """``(env names, description, current value)`` for ``serve --help``."""
        out = []
        for var in VARS:
            value = getattr(self, var.name.lower())
            if var.name == "API_KEY" and value:
                value = "(set)"
            elif isinstance(value, HostPort):
                value = f"{value.host}:{value.port}"
            elif var.name in ("KEEP_ALIVE", "LOAD_TIMEOUT", "RUNNER_TIMEOUT", "STEP_TIMEOUT"):
                value = format_duration(value)
            elif isinstance(value, tuple):
                value = ",".join(value)
            out.append((" / ".join(var.env_names), var.description, "" if value is None else str(value)))
        return out
