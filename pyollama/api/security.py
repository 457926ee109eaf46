"""Safety at the door, as one ASGI middleware: Host-header guard, CORS, optional API key, body limit.

* **Host guard** (DNS rebinding, docs/contract.md §1.6): when the server listens on loopback, a request whose
  ``Host`` is not local (localhost, a loopback/private/unspecified/local-interface IP, this machine's name,
  or a name under ``.localhost``/``.local``/``.internal``) gets a bare 403.
* **CORS**: origins from ``OLLAMA_ORIGINS`` plus Ollama's built-in list, ``*`` wildcards allowed. A
  preflight from an allowed origin gets 204 with the allow headers; a request from any other origin 403.
* **API key** (``PYOLLAMA_API_KEY``, off by default): ``Authorization: Bearer <key>`` (what the OpenAI SDK
  sends) or ``x-api-key`` (the Anthropic SDK) on every request but the health check ``GET /``, the chat
  page's static files under ``/ui`` and CORS preflights; otherwise 401, in the error shape of the API the
  path belongs to.
* **Body limit** (``PYOLLAMA_MAX_BODY``): larger JSON bodies get 413; blob uploads are streamed to disk
  and exempt.

Thread-safety: runs on the event loop; the configuration is immutable.
"""
from __future__ import annotations

import fnmatch
import functools
import hmac
import ipaddress
import json
import re
import socket
from typing import Any

from pyollama.api.errors import NATIVE, shaped_body, surface_of
from pyollama.config import Config
from pyollama.errors import RequestTooLarge

ALLOW_HEADERS = (
    "Authorization", "Content-Type", "User-Agent", "Accept", "X-Requested-With", "OpenAI-Beta",
    "x-stainless-arch", "x-stainless-async", "x-stainless-custom-poll-interval", "x-stainless-helper-method",
    "x-stainless-lang", "x-stainless-os", "x-stainless-package-version", "x-stainless-poll-helper",
    "x-stainless-retry-count", "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-timeout",
    "x-api-key", "anthropic-version", "anthropic-beta",
)
ALLOW_METHODS = "GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
PREFLIGHT_MAX_AGE = "43200"
LOCAL_SUFFIXES = (".localhost", ".local", ".internal")
BLOB_PATH = re.compile(r"^/api/blobs/[^/]+$")
UI_PATH = "/ui"          # the chat page's static files: no data in them, so no key needed to fetch them


@functools.lru_cache(maxsize=1)
def _local_addresses() -> frozenset[str]:
    """This machine's interface addresses (best effort, without extra packages)."""
    addrs: set[str] = set()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None):
            addrs.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    for family, target in ((socket.AF_INET, "10.255.255.255"), (socket.AF_INET6, "2001:db8::1")):
        try:                            # the address the OS would use for outbound traffic
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((target, 1))
                addrs.add(s.getsockname()[0])
        except OSError:
            pass
    return frozenset(addrs)


def split_host(host: str) -> str:
    """The host part of a ``Host`` header (``[::1]:11434`` → ``::1``)."""
    host = host.strip()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":")[0]
    return host


def allowed_host(header: str) -> bool:
    host = split_host(header).lower()
    if host in ("", "localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        return ip.is_loopback or ip.is_private or ip.is_unspecified or host in _local_addresses()
    if host == socket.gethostname().lower():
        return True
    return host.endswith(LOCAL_SUFFIXES)


def origin_allowed(origin: str, patterns: tuple[str, ...]) -> bool:
    for p in patterns:
        if p == "*" or p == origin:
            return True
        if "*" in p and fnmatch.fnmatchcase(origin, p.replace("[", "[[]").replace("?", "[?]")):
            return True
    return False


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


async def _send_simple(send: Any, status: int, body: bytes = b"", headers: list[tuple[bytes, bytes]] | None = None,
                       content_type: bytes | None = None) -> None:
    hs = list(headers or [])
    if content_type:
        hs.append((b"content-type", content_type))
    hs.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": hs})
    await send({"type": "http.response.body", "body": body})


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


class Guard:
    """The middleware. ``loopback`` says whether the server listens on a loopback address (the Host
    guard only applies then, as in Ollama)."""

    def __init__(self, app: Any, cfg: Config, *, loopback: bool | None = None):
        self.app = app
        self.cfg = cfg
        self.loopback = cfg.host.is_loopback if loopback is None else loopback
        self.origins = cfg.allowed_origins
        self.key = cfg.api_key.encode() if cfg.api_key else b""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        h = _headers(scope)
        method = scope["method"]
        path = scope.get("path", "")
        if self.loopback and not allowed_host(h.get("host", "")):
            await _send_simple(send, 403)
            return
        origin = h.get("origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if not origin_allowed(origin, self.origins):
                await _send_simple(send, 403)
                return
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin")]
            if method == "OPTIONS" and "access-control-request-method" in h:
                await _send_simple(send, 204, headers=cors + [
                    (b"access-control-allow-methods", ALLOW_METHODS.encode()),
                    (b"access-control-allow-headers", ", ".join(ALLOW_HEADERS).encode()),
                    (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode())])
                return
        if method == "OPTIONS":
            await _send_simple(send, 204, headers=cors)
            return
        surface = surface_of(path)          # errors in the shape of the API the client speaks
        open_path = path == "/" or path == UI_PATH or path.startswith(UI_PATH + "/")
        if self.key and not (open_path and method in ("GET", "HEAD")) and not self._authorized(h):
            msg, code = ("unauthorized", None) if surface == NATIVE else ("invalid API key", "invalid_api_key")
            await _send_simple(send, 401, _json(shaped_body(surface, 401, msg, code)), cors, b"application/json")
            return
        if not BLOB_PATH.match(path):
            length = h.get("content-length")
            if length is not None and length.isdigit() and int(length) > self.cfg.max_body:
                await _send_simple(send, 413, _json(shaped_body(surface, 413, self._too_large())), cors,
                                   b"application/json")
                return
            receive = self._limited(receive)
        if cors:
            send = self._with_headers(send, cors)
        await self.app(scope, receive, send)

    def _too_large(self) -> str:
        return f"request body too large: the limit is {self.cfg.max_body} bytes (PYOLLAMA_MAX_BODY)"

    def _authorized(self, h: dict[str, str]) -> bool:
        auth = h.get("authorization", "")
        bearer = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        return any(given and hmac.compare_digest(given.encode(), self.key)
                   for given in (bearer, h.get("x-api-key", "").strip()))

    def _limited(self, receive: Any) -> Any:
        seen = 0
        limit = self.cfg.max_body
        too_large = self._too_large

        async def wrapped() -> dict[str, Any]:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:      # a chunked body with no Content-Length: the handler answers 413
                    raise RequestTooLarge(too_large())
            return msg
        return wrapped

    @staticmethod
    def _with_headers(send: Any, extra: list[tuple[bytes, bytes]]) -> Any:
        async def wrapped(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                msg = {**msg, "headers": list(msg.get("headers", [])) + extra}
            await send(msg)
        return wrapped
