"""The CLI's HTTP client for the server's native API (httpx), as Ollama's ``api.Client`` is for its CLI.

    c = Client.from_env()                        # OLLAMA_HOST / PYOLLAMA_HOST, optional API key
    c.ensure_server(autostart=True)              # starts `pyollama serve` in the background if none runs
    c.post("/api/show", {"model": "smollm2"})    # JSON in, JSON out; an {"error"} body raises ClientError
    for chunk in c.stream("/api/pull", {...}):   # NDJSON lines; an {"error"} line raises ClientError
        ...

Every failure surfaces as :class:`~pyollama.errors.ClientError` carrying the server's message (and its
HTTP status), so the command line can print one ``Error: ...`` line. Leaving a ``stream`` early closes the
connection, which is how the server learns to cancel a generation (Ctrl+C).

Thread-safety: one Client per thread (httpx.Client is not shared across threads here).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import httpx

from pyollama import __version__
from pyollama.config import Config, HostPort
from pyollama.errors import ClientError, ServerUnreachable

CHUNK = 1 << 20
Progress = Callable[[dict[str, Any]], None]


@functools.lru_cache(maxsize=1)
def config() -> Config:
    """The environment, read once per command (a bad value is warned about once, not per use)."""
    return Config.from_env()


def client_host(cfg: Config) -> HostPort:
    """Where to connect: the configured host, with an unspecified bind address (0.0.0.0, ::) turned into
    loopback, as Ollama's client does."""
    h = cfg.host
    host = "127.0.0.1" if h.host in ("0.0.0.0", "::", "") else h.host
    return HostPort(h.scheme, host, h.port)


def _error_text(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        return body["error"]
    if isinstance(body, dict) and isinstance(body.get("error"), dict):   # an OpenAI-style body
        return str(body["error"].get("message") or body["error"])
    text = r.text.strip()
    return f"{r.status_code} {r.reason_phrase}" + (f": {text[:200]}" if text else "")


class Client:
    def __init__(self, host: HostPort, *, api_key: str = "", connect_timeout: float = 5.0):
        self.host = host
        headers = {"User-Agent": f"pyollama/{__version__}", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        # Proxies from the environment are honoured for remote servers only: a proxy must never see the
        # loopback traffic (Go's client, which Ollama's CLI uses, never proxies loopback either).
        self.http = httpx.Client(base_url=host.url, headers=headers, trust_env=not host.is_loopback,
                                 timeout=httpx.Timeout(None, connect=connect_timeout))

    @classmethod
    def from_env(cls, cfg: Config | None = None) -> Client:
        cfg = cfg or config()
        return cls(client_host(cfg), api_key=cfg.api_key)

    @property
    def url(self) -> str:
        return self.host.url

    def close(self) -> None:
        self.http.close()

    # --- server presence ---------------------------------------------------------------------------
    def heartbeat(self) -> bool:
        """True when a server answers ``HEAD /``; False when nothing listens (connection refused)."""
        try:
            self.http.head("/", timeout=5)
            return True
        except httpx.ConnectError:
            return False
        except httpx.TransportError as e:
            raise self._unreachable(e) from None

    def ensure_server(self, *, autostart: bool) -> None:
        """Make sure a server answers; start one in the background if allowed and the host is this
        machine. Raises :class:`ServerUnreachable` otherwise."""
        if self.heartbeat():
            return
        if autostart and self.host.is_loopback:
            from pyollama.cli.background import start_server

            start_server(self)
            return
        raise self._unreachable(None)

    def _unreachable(self, e: Exception | None) -> ServerUnreachable:
        why = f" ({e})" if e is not None and str(e) else ""
        return ServerUnreachable(f"could not connect to a pyollama server at {self.host.host}:{self.host.port}"
                                 f"{why}; is it running? Start one with `pyollama serve`")

    # --- requests ----------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        try:
            r = self.http.request(method, path, json=body, **kw) if body is not None else \
                self.http.request(method, path, **kw)
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None
        except httpx.TransportError as e:
            raise ClientError(f"{method} {path}: {e or type(e).__name__}") from None
        if r.status_code >= 400:
            raise ClientError(_error_text(r), r.status_code)
        return r

    def get(self, path: str) -> Any:
        return self.request("GET", path).json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.request("POST", path, body)
        return r.json() if r.content else None

    def delete(self, path: str, body: dict[str, Any]) -> None:
        self.request("DELETE", path, body)

    def stream(self, path: str, body: dict[str, Any]) -> Generator[dict[str, Any], None, None]:
        """POST and yield each NDJSON object. Closing the iterator closes the connection."""
        try:
            with self.http.stream("POST", path, json=body) as r:
                if r.status_code >= 400:
                    r.read()
                    raise ClientError(_error_text(r), r.status_code)
                for line in r.iter_lines():
                    if not line.strip():
                        continue
                    try:
                        chunk = json.loads(line)
                    except ValueError:
                        raise ClientError(f"unexpected reply from the server: {line[:200]!r}") from None
                    if isinstance(chunk, dict) and chunk.get("error"):
                        raise ClientError(str(chunk["error"]), r.status_code)
                    yield chunk
        except httpx.ConnectError as e:
            raise self._unreachable(e) from None
        except httpx.TransportError as e:
            raise ClientError(f"the connection to the server broke: {e or type(e).__name__}") from None

    # --- blobs -------------------------------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        try:
            self.request("HEAD", f"/api/blobs/{digest}")
            return True
        except ClientError as e:
            if e.status == 404:
                return False
            raise

    def upload_blob(self, path: Path, progress: Progress | None = None, *, label: str = "") -> str:
        """Hash ``path``, then send it as a blob unless the server has it. Returns ``sha256:<hex>``.
        ``progress`` receives Ollama-style ``{"status","digest","total","completed"}`` events."""
        digest = file_digest(path, progress, label=label)
        if self.has_blob(digest):
            return digest
        total = path.stat().st_size
        status = f"copying file {digest[7:19]}"
        done = 0

        def body() -> Iterator[bytes]:
            nonlocal done
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    done += len(chunk)
                    yield chunk
                    if progress:
                        progress({"status": status, "digest": digest, "total": total, "completed": done})

        if progress:
            progress({"status": status, "digest": digest, "total": total, "completed": 0})
        self.request("POST", f"/api/blobs/{digest}", content=body())
        return digest


def file_digest(path: Path, progress: Progress | None = None, *, label: str = "") -> str:
    """sha256 of a file, reporting progress as a ``hashing <name>`` bar for files over 64 MiB."""
    total = os.path.getsize(path)
    h = hashlib.sha256()
    key = f"hash:{path}"
    status = f"hashing {label or path.name}"
    show = progress is not None and total > 64 * CHUNK
    done = 0
    with open(path, "rb") as f:
        while chunk := f.read(4 * CHUNK):
            h.update(chunk)
            done += len(chunk)
            if show:
                assert progress is not None
                progress({"status": status, "digest": key, "total": total, "completed": done})
    return "sha256:" + h.hexdigest()
