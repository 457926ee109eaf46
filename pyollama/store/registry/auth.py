"""Registry authentication: ``WWW-Authenticate`` challenges, HTTP basic, and the bearer token flow.

Ollama understands only its own signed-token variant of the bearer flow and no basic auth (#7244, #9215,
#4204). pyollama implements what Docker, containerd and oras do:

* ``Basic realm=…`` → resend with ``Authorization: Basic`` from the host's credentials;
* ``Bearer realm=…,service=…,scope=…`` → ``GET <realm>?service=…&scope=…`` (one ``scope`` parameter per
  space-separated scope, plus the scopes the caller announced it will need, e.g. the ``pull`` scope of a
  mount source), with basic credentials when there are any, and send the returned token as
  ``Authorization: Bearer``. Tokens are cached per (realm, service, scope set) until they expire.

Credentials go to a token realm only over https or when the realm is on the registry's own host name;
a plain-http realm elsewhere gets an anonymous request, so a misconfigured registry cannot make the
client send a password in clear text to a third party. Nothing here logs a header, a token or a password.

Thread-safety: an :class:`Authenticator` may be shared by the threads of one pull/push (it has a lock).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import httpx

from pyollama.errors import AuthError, RegistryError, RegistryUnreachable
from pyollama.store.registry.options import Credentials

log = logging.getLogger("pyollama.registry")

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)\s*,?')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)(?:\s+|$)")


@dataclass
class Challenge:
    scheme: str                           # lower case: "basic", "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()


def parse_challenges(headers: list[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values (RFC 7235: several challenges, quoted values with commas).

    ``Bearer realm="https://a/token",service="reg",scope="repository:x/y:pull,push repository:z/w:pull"``
    → ``[Challenge("bearer", {"realm": …, "service": …, "scope": …})]``.
    """
    out: list[Challenge] = []
    for value in headers:
        pos = 0
        current: Challenge | None = None
        while pos < len(value):
            if value[pos] in " ,":
                pos += 1
                continue
            m = _PARAM_RE.match(value, pos)
            if m and current is not None:
                v = m.group(2)
                if v.startswith('"'):
                    v = re.sub(r"\\(.)", r"\1", v[1:-1])
                current.params[m.group(1).lower()] = v
                pos = m.end()
                continue
            s = _SCHEME_RE.match(value, pos)
            if not s:
                break
            current = Challenge(s.group(1).lower())
            out.append(current)
            pos = s.end()
    return out


def merge_scopes(*groups: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Union of ``repository:<name>:<actions>`` scopes, actions merged per resource, sorted."""
    actions: dict[str, set[str]] = {}
    for group in groups:
        for scope in group:
            resource, sep, acts = scope.rpartition(":")
            if not sep or not resource:
                actions.setdefault(scope, set())
                continue
            actions.setdefault(resource, set()).update(a for a in acts.split(",") if a)
    return tuple(sorted(f"{r}:{','.join(sorted(a))}" if a else r for r, a in actions.items()))


def _hostname(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Holds the ``Authorization`` value for one registry host and renews it on challenges.

    ``fetch`` is the session's plain GET (no auth added, proxies and timeouts applied) used to call the
    token realm; it returns an httpx.Response with the body read.
    """

    def __init__(self, registry_url: str, credentials: Credentials | None,
                 fetch: Callable[[str, dict[str, str]], httpx.Response], *, insecure: bool = False):
        self.registry_url = registry_url
        self.host = urlsplit(registry_url).netloc
        self.credentials = credentials
        self._fetch = fetch
        self.insecure = insecure
        self._lock = threading.Lock()
        self._header: str | None = None
        self._scopes: tuple[str, ...] = ()
        self._tokens: dict[tuple[str, str, tuple[str, ...]], _Token] = {}
        self.wanted: list[str] = []      # scopes the caller will need (announced before the first request)

    def header(self) -> str | None:
        """The current ``Authorization`` value for the registry host, if any."""
        with self._lock:
            if self._header is None and self.credentials and self.credentials.token:
                return f"Bearer {self.credentials.token}"
            return self._header

    def want(self, *scopes: str) -> None:
        with self._lock:
            self.wanted = list(merge_scopes(self.wanted, scopes))

    def on_challenge(self, response: httpx.Response, sent: str | None) -> str:
        """Handle a 401: return a new ``Authorization`` value to retry with, or raise AuthError.

        ``sent`` is the Authorization value the rejected request carried (None when it had none).
        """
        challenges = parse_challenges(response.headers.get_list("www-authenticate"))
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        with self._lock:
            if bearer is not None and bearer.params.get("realm"):
                header = self._bearer(bearer, sent)
            elif basic is not None:
                header = self._basic(sent)
            else:
                raise AuthError(f"unauthorized: {describe_error(response) or 'authentication required'} "
                                f"(registry {self.host} sent no usable WWW-Authenticate challenge)",
                                http_status=401, code="UNAUTHORIZED")
            self._header = header
            return header

    # -- schemes -----------------------------------------------------------------------------------
    def _missing(self) -> AuthError:
        return AuthError(f"unauthorized: authentication required by {self.host}; no credentials are set "
                         "for it (PYOLLAMA_REGISTRY_AUTH, ~/.pyollama/registry-auth.json, or the request's "
                         "username/password)", http_status=401, code="UNAUTHORIZED")

    def _rejected(self) -> AuthError:
        return AuthError(f"unauthorized: {self.host} rejected the credentials for "
                         f"'{self.credentials.username if self.credentials else ''}'",
                         http_status=401, code="UNAUTHORIZED")

    def _basic(self, sent: str | None) -> str:
        if not self.credentials or not (self.credentials.username or self.credentials.password):
            raise self._missing()
        header = self.credentials.basic()
        if sent == header:
            raise self._rejected()
        return header

    def _bearer(self, ch: Challenge, sent: str | None) -> str:
        realm = ch.params["realm"]
        service = ch.params.get("service", "")
        scopes = merge_scopes(self._scopes, ch.scopes, self.wanted)
        key = (realm, service, scopes)
        cached = self._tokens.get(key)
        if cached is not None and cached.expires > time.monotonic() and f"Bearer {cached.value}" != sent:
            self._scopes = scopes
            return f"Bearer {cached.value}"
        # No token for these scopes yet, or the one we sent was refused (expired during a long
        # transfer, or revoked): ask again. The session bounds how often one request may do this.
        token = self._request_token(realm, service, scopes)
        self._tokens[key] = token
        self._scopes = scopes
        return f"Bearer {token.value}"

    def _may_send_credentials(self, realm: str) -> bool:
        parts = urlsplit(realm)
        return parts.scheme == "https" or (parts.hostname or "").lower() == _hostname(self.registry_url)

    def _request_token(self, realm: str, service: str, scopes: tuple[str, ...]) -> _Token:
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AuthError(f"unauthorized: {self.host} names an unusable token realm", http_status=401,
                            code="UNAUTHORIZED")
        params = [("service", service)] if service else []
        params += [("scope", s) for s in scopes]
        query = urlencode(params, quote_via=quote)
        url = realm + ("&" if parts.query else "?") + query if query else realm
        headers = {}
        creds = self.credentials
        if creds and (creds.username or creds.password):
            if self._may_send_credentials(realm):
                headers["Authorization"] = creds.basic()
            else:
                log.warning("not sending credentials to the plain-http token realm of %s on another host",
                            self.host)
        try:
            resp = self._fetch(url, headers)
        except httpx.HTTPError as e:
            raise RegistryUnreachable(f"token service of {self.host} unreachable: {type(e).__name__}") \
                from None
        if resp.status_code in (401, 403):
            if headers:
                raise self._rejected()
            raise self._missing()
        if resp.status_code != 200:
            raise RegistryError(f"token service of {self.host}: {resp.status_code}: "
                                f"{describe_error(resp)}", http_status=resp.status_code)
        try:
            body = resp.json()
            value = str(body.get("token") or body.get("access_token") or "")
            expires_in = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            value, expires_in = "", 0.0
        if not value:
            raise RegistryError(f"token service of {self.host} returned no token", http_status=200)
        # Renew a little early so a long transfer never sends a token in its last seconds.
        return _Token(value, time.monotonic() + max(expires_in - 10.0, expires_in / 2))


def describe_error(response: httpx.Response) -> str:
    """``CODE: message`` from a distribution error body (``{"errors":[{code,message,detail}]}``), else the
    body text (cut short). The response must have been read."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors
                             if isinstance(e, dict))
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        pass
    try:
        text = response.text.strip()
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    return text[:300]


def error_code(response: httpx.Response) -> str:
    """The first OCI error code of a response body, or ""."""
    try:
        body = response.json()
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("code", ""))
    except (ValueError, UnicodeDecodeError, httpx.ResponseNotRead):
        pass
    return ""
