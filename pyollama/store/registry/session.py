"""HTTP to one registry repository: URLs, proxies, timeouts, redirects, auth retries, error mapping.

One :class:`Session` serves one pull or push (``/v2/<namespace>/<model>/…`` on the name's host). It owns
httpx clients (one per proxy in use: a redirect to a CDN may need a different one than the registry),
an :class:`~pyollama.store.registry.auth.Authenticator`, and these rules:

* **insecure**: as in Ollama, ``insecure`` turns the scheme into http; a name that asks for http without it
  is refused here, in the constructor, before any socket exists (``insecure protocol http``).
* **proxies**: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (either case), decided per URL; loopback hosts
  never go through a proxy, as in Go's ``httpproxy`` that Ollama uses. TLS trusts ``SSL_CERT_FILE`` /
  ``SSL_CERT_DIR`` when set, else certifi; verification is never switched off.
* **redirects** are followed by hand: the Authorization header goes only to the registry's own host, never
  to a CDN a blob redirects to (Ollama sends none to ranged GETs at all, #6917, which breaks registries
  that serve blobs themselves behind auth).
* **timeouts** everywhere: connect, every read (a stalled stream raises), every write.
* **retries** for idempotent requests on dropped connections, 429 and 5xx, with exponential backoff;
  a refused connection fails at once (a registry that is down is not going to answer in 30 s either).

Thread-safety: a Session may be used by several threads at once (httpx clients pool connections and are
thread-safe; the authenticator has a lock).
"""
from __future__ import annotations

import ipaddress
import logging
import os
import ssl
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from urllib.parse import urljoin, urlsplit

import httpx

from pyollama.errors import AuthError, InsecureProtocol, RegistryError, RegistryUnreachable
from pyollama.store.names import ModelName
from pyollama.store.registry.auth import Authenticator, describe_error, error_code
from pyollama.store.registry.options import RegistryOptions

log = logging.getLogger("pyollama.registry")

REDIRECTS = (301, 302, 303, 307, 308)
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
MAX_REDIRECTS = 10

Content = bytes | Callable[[], Iterable[bytes]] | None


def safe_url(url: str) -> str:
    """A URL fit for messages and logs: no query (presigned URLs carry signatures there), no userinfo."""
    p = urlsplit(url)
    host = p.hostname or ""
    if p.port:
        host += f":{p.port}"
    return f"{p.scheme}://{host}{p.path}"


def is_loopback(host: str) -> bool:
    h = host.strip("[]").lower()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment asks for ``url``, or None (loopback and ``NO_PROXY`` hosts)."""
    p = urlsplit(url)
    host = p.hostname or ""
    if not host or is_loopback(host):
        return None
    proxies = urllib.request.getproxies_environment()
    if not proxies:
        return None
    netloc = host if p.port is None else f"{host}:{p.port}"
    if "no" in proxies and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
            netloc, proxies):
        return None
    return proxies.get(p.scheme) or None


_contexts: dict[tuple[str, str], ssl.SSLContext] = {}
_contexts_lock = threading.Lock()


def ssl_context() -> ssl.SSLContext:
    """The TLS trust httpx would build (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), made once per
    setting: loading the CA bundle costs tens of milliseconds, and a pull opens several clients."""
    key = (os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", ""))
    with _contexts_lock:
        ctx = _contexts.get(key)
        if ctx is None:
            ctx = _contexts[key] = httpx.create_ssl_context(trust_env=True)
        return ctx


def _reason(e: BaseException) -> str:
    """A short cause for a transport error, without URLs (which may carry presigned queries)."""
    text = str(e) or type(e).__name__
    low = text.lower()
    if "connection refused" in low or "errno 111" in low:
        return "connection refused"
    if "name or service not known" in low or "nodename nor servname" in low or "errno -2" in low \
            or "temporary failure in name resolution" in low:
        return "no such host"
    if isinstance(e, httpx.TimeoutException):
        return f"timed out ({type(e).__name__})"
    return text.splitlines()[0][:200]


class Session:
    """HTTP for one repository of one registry. ``close()`` when done (or use ``with``)."""

    def __init__(self, name: ModelName, options: RegistryOptions):
        self.name = name
        self.options = options
        scheme = "http" if options.insecure else name.scheme
        if scheme == "http" and not options.insecure:
            raise InsecureProtocol("insecure protocol http")
        self.base = f"{scheme}://{name.host}"
        self.repository = name.repository
        self._clients: dict[str | None, httpx.Client] = {}
        self.auth = Authenticator(self.base, options.resolve_credentials(name.host), self._fetch_plain,
                                  insecure=options.insecure)

    # -- urls ---------------------------------------------------------------------------------------
    def url(self, path: str, repository: str | None = None) -> str:
        return f"{self.base}/v2/{repository or self.repository}/{path.lstrip('/')}"

    def same_host(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.base)
        return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())

    # -- clients ------------------------------------------------------------------------------------
    def timeout(self, read: float | None = None) -> httpx.Timeout:
        o = self.options
        r = o.request_timeout if read is None else read
        return httpx.Timeout(connect=o.connect_timeout, read=r, write=o.request_timeout,
                             pool=o.connect_timeout + o.request_timeout)

    def client(self, url: str) -> httpx.Client:
        proxy = proxy_for(url)
        c = self._clients.get(proxy)
        if c is None:
            transport = httpx.HTTPTransport(proxy=proxy, verify=ssl_context(), retries=0,
                                            limits=httpx.Limits(max_connections=32,
                                                                max_keepalive_connections=16))
            c = httpx.Client(transport=transport, trust_env=False, follow_redirects=False,
                             timeout=self.timeout(), headers={"User-Agent": self.options.user_agent})
            self._clients[proxy] = c
        return c

    def close(self) -> None:
        for c in self._clients.values():
            c.close()
        self._clients.clear()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------------
    def _fetch_plain(self, url: str, headers: dict[str, str]) -> httpx.Response:
        """GET without the registry's Authorization (the token realm); follows same-scheme redirects."""
        for _ in range(MAX_REDIRECTS):
            resp = self.client(url).get(url, headers=headers)
            if resp.status_code in REDIRECTS and resp.headers.get("location"):
                url = urljoin(url, resp.headers["location"])
                continue
            return resp
        raise RegistryError(f"token service of {self.name.host}: too many redirects")

    def _send_once(self, method: str, url: str, headers: dict[str, str], content: Content,
                   stream: bool, read_timeout: float | None) -> httpx.Response:
        body = content() if callable(content) else content
        req = self.client(url).build_request(method, url, headers=headers, content=body,
                                             timeout=self.timeout(read_timeout))
        return self.client(url).send(req, stream=stream)

    def request(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                content: Content = None, stream: bool = False, read_timeout: float | None = None,
                retry: bool = True, follow: bool = True, what: str = "") -> httpx.Response:
        """Send a request with auth, redirects and retries; returns the final response (any status).

        ``content`` is bytes or a zero-argument callable returning a fresh iterable of chunks, so a request
        can be sent again after a 401 or a dropped connection. With ``stream=True`` the caller closes the
        response. ``follow=False`` returns a redirect as is. ``what`` prefixes error messages.
        Raises RegistryUnreachable / AuthError; HTTP error statuses are returned, not raised.
        """
        tries = 0
        redirects = 0
        sent_auth: str | None = None
        challenges = 0
        while True:
            hdrs = dict(headers or {})
            on_registry = self.same_host(url)
            if on_registry:
                sent_auth = self.auth.header()
                if sent_auth:
                    hdrs["Authorization"] = sent_auth
            try:
                resp = self._send_once(method, url, hdrs, content, stream, read_timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol,
                    httpx.ProxyError) as e:
                raise self.unreachable(method, url, e, what) from None
            except httpx.TransportError as e:
                tries += 1
                if not retry or tries >= self.options.max_tries:
                    raise self.unreachable(method, url, e, what) from None
                self.backoff(tries, f"{method} {safe_url(url)}: {_reason(e)}")
                continue
            status = resp.status_code
            if status == 401 and on_registry:
                resp.read()
                resp.close()
                challenges += 1
                # The authenticator raises when it has nothing new to try; two renewals per request
                # cover "no token yet" plus one scope upgrade (Ollama allows one).
                new = self.auth.on_challenge(resp, sent_auth)
                if challenges > 2 or new == sent_auth:
                    raise AuthError(f"unauthorized: {describe_error(resp) or 'access denied'}",
                                    http_status=401, code=error_code(resp) or "UNAUTHORIZED")
                continue
            if follow and status in REDIRECTS and resp.headers.get("location"):
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{what + ': ' if what else ''}too many redirects",
                                        http_status=status)
                url = urljoin(url, resp.headers["location"])
                if status == 303:
                    method, content = "GET", None
                continue
            if retry and status in RETRY_STATUS and tries + 1 < self.options.max_tries:
                tries += 1
                resp.close()
                self.backoff(tries, f"{method} {safe_url(url)}: HTTP {status}",
                             retry_after=resp.headers.get("retry-after"))
                continue
            return resp

    def backoff(self, tries: int, why: str, retry_after: str | None = None) -> None:
        delay = min(self.options.backoff * (2 ** (tries - 1)), 30.0)
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), 60.0)
        log.info("%s; retry %d in %.2fs", why, tries, delay)
        time.sleep(delay)

    def unreachable(self, method: str, url: str, e: BaseException, what: str = "") -> RegistryUnreachable:
        reason = _reason(e)
        text = str(e).lower()
        if urlsplit(url).scheme == "https" and ("wrong version number" in text or "record layer" in text
                                                or "unknown protocol" in text):
            reason += " (the registry may speak plain http: use insecure)"
        prefix = f"{what}: " if what else ""
        return RegistryUnreachable(f'{prefix}{method.title()} "{safe_url(url)}": {reason}')

    def error(self, resp: httpx.Response, what: str) -> RegistryError:
        """A RegistryError for an unexpected status (the body is read here)."""
        try:
            resp.read()
        except httpx.HTTPError:
            pass
        detail = describe_error(resp)
        code = error_code(resp)
        msg = f"{what}: {resp.status_code}: {detail}" if detail else f"{what}: {resp.status_code}"
        if resp.status_code in (401, 403):
            return AuthError(msg, http_status=resp.status_code, code=code)
        return RegistryError(msg, http_status=resp.status_code, code=code)
