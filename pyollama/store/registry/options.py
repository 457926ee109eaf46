"""Settings of one pull/push: transport security, credentials, timeouts, retry and part sizes.

Credentials are looked up per registry host, never sent to another one (Docker's model). Sources, first
match wins:

1. ``credentials=`` passed by the caller (e.g. the API request's ``username``/``password``, which Ollama
   accepts but ignores);
2. ``PYOLLAMA_REGISTRY_AUTH`` (``OLLAMA_REGISTRY_AUTH`` accepted): JSON in Docker's ``config.json`` shape,
   ``{"auths": {"host:port": {"auth": base64("user:pass")}}}`` or ``{"username": …, "password": …}`` per
   host (the ``auths`` wrapper may be left out);
3. the file named by ``PYOLLAMA_REGISTRY_AUTH_FILE``, else ``~/.pyollama/registry-auth.json``, same shape
   (a copy of ``~/.docker/config.json`` works when it holds inline ``auth`` entries).

:class:`Credentials` never shows its secret in ``repr``/``str``, so it cannot leak through a log line or a
traceback's locals formatting.

Thread-safety: plain data; the loaders read the environment and the file on each call.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pyollama.errors import AuthError

ENV_AUTH = ("PYOLLAMA_REGISTRY_AUTH", "OLLAMA_REGISTRY_AUTH")
ENV_AUTH_FILE = "PYOLLAMA_REGISTRY_AUTH_FILE"
DEFAULT_AUTH_FILE = Path("~/.pyollama/registry-auth.json")


@dataclass(frozen=True)
class Credentials:
    """A username and password (HTTP basic, also sent to a bearer token endpoint), or a ready token."""

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)   # an identity/registry token used as the bearer directly

    def __repr__(self) -> str:   # never the secret
        return f"Credentials(username={self.username!r}, password={'***' if self.password else ''!r})"

    __str__ = __repr__

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def __bool__(self) -> bool:
        return bool(self.username or self.password or self.token)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("pyollama")
    except Exception:  # noqa: BLE001 - not installed (running from a checkout)
        return "0.0.0"


def default_user_agent() -> str:
    """``pyollama/<ver> (<arch> <os>) Python/<ver>``, shaped like Ollama's ``ollama/<ver> (…) Go/<ver>``."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return f"pyollama/{_version()} ({arch} {sys.platform}) Python/{platform.python_version()}"


@dataclass
class RegistryOptions:
    """Tunables of the registry client. The defaults suit real registries; tests shrink sizes and timeouts.

    ``insecure`` allows plain http (and only that: TLS verification is never switched off; use
    ``SSL_CERT_FILE`` for a private CA), as Ollama's ``--insecure`` does.
    """

    insecure: bool = False
    credentials: Credentials | None = None
    user_agent: str = field(default_factory=default_user_agent)
    connect_timeout: float = 10.0
    stall_timeout: float = 30.0           # no byte for this long: the part is retried (Ollama: 30 s)
    request_timeout: float = 60.0         # reads of small responses (manifests, tokens, upload answers)
    max_tries: int = 6                    # per part / per request, as Ollama's 6 tries
    max_stalls: int = 10                  # stalls do not use up a try, but are bounded so nothing hangs
    backoff: float = 1.0                  # first retry waits this long, doubling each time (cap 30 s)
    # Ranges in flight per blob: 4, or 2 on a 2-core machine, where a third and fourth stream only add
    # contention (measured on loopback in bench/registry/); Ollama uses 16.
    parallel: int = field(default_factory=lambda: 2 if (os.cpu_count() or 1) <= 2 else 4)
    min_part: int = 16 << 20              # parts are size/16 clamped to [min_part, max_part]
    max_part: int = 1 << 30
    save_interval: float = 1.0            # part progress is persisted at least this often (seconds)
    upload_chunk: int = 64 << 20          # PATCH size; blobs up to this size go in one PUT
    buffer_size: int = 4 << 20            # reused receive buffer per range, written with one pwrite
    progress_interval: float = 0.1        # seconds between progress events of one blob
    max_manifest: int = 4 << 20

    def resolve_credentials(self, host: str) -> Credentials | None:
        """Explicit credentials, else the environment, else the auth file; None when none apply."""
        if self.credentials:
            return self.credentials
        return lookup_credentials(host)


def _entry_credentials(entry: object) -> Credentials | None:
    if isinstance(entry, str):   # bare "base64(user:pass)"
        entry = {"auth": entry}
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            user, sep, pw = base64.b64decode(str(entry["auth"]), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise AuthError("registry credentials: an \"auth\" entry is not base64 of user:password") \
                from None
        if not sep:
            raise AuthError("registry credentials: an \"auth\" entry is not base64 of user:password")
        return Credentials(user, pw)
    if entry.get("identitytoken") or entry.get("registrytoken"):
        return Credentials(token=str(entry.get("registrytoken") or entry.get("identitytoken")))
    if entry.get("username") or entry.get("password"):
        return Credentials(str(entry.get("username", "")), str(entry.get("password", "")))
    return None


def _config_host(key: str) -> str:
    """A config key (``host:port``, ``https://host/v1/``, …) reduced to ``host[:port]``, lower case."""
    k = str(key).strip().lower()
    if "://" in k:
        k = k.split("://", 1)[1]
    return k.split("/", 1)[0]


def credentials_from_config(data: object, host: str) -> Credentials | None:
    """The entry for ``host`` in a Docker-style config object (``auths`` wrapper optional)."""
    if not isinstance(data, dict):
        raise AuthError("registry credentials: the config is not a JSON object")
    auths = data.get("auths", data)
    if not isinstance(auths, dict):
        return None
    want = host.lower()
    for key, entry in auths.items():
        if _config_host(key) == want:
            return _entry_credentials(entry)
    return None


def auth_file() -> Path:
    v = os.environ.get(ENV_AUTH_FILE, "").strip()
    return Path(v).expanduser() if v else DEFAULT_AUTH_FILE.expanduser()


def lookup_credentials(host: str) -> Credentials | None:
    """Credentials for ``host`` from the environment, then the auth file (see the module docstring)."""
    for name in ENV_AUTH:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                data = json.loads(raw)
            except ValueError:
                # The message names the variable, never its value: it holds secrets.
                raise AuthError(f"{name} is not valid JSON") from None
            found = credentials_from_config(data, host)
            if found:
                return found
    path = auth_file()
    try:
        raw_file = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AuthError(f"cannot read registry credentials from {path}: {e.strerror}") from None
    try:
        data = json.loads(raw_file)
    except ValueError:
        raise AuthError(f"registry credentials file {path} is not valid JSON") from None
    return credentials_from_config(data, host)
