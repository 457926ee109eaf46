"""The hot path of a blob download: a ranged GET whose body is read with ``readinto`` into a reused buffer.

httpx hands a body out as freshly allocated 64 KiB ``bytes`` through several generator layers; on a
2-core machine that caps a pull at roughly half of what curl does on loopback. The stdlib's
``http.client`` reads straight into our buffer (``HTTPResponse.readinto``), which is what the bench in
``bench/registry/`` needs to stay within 2× of curl. Everything that is not the plain case — a redirect,
an auth challenge, an error status — is handed back to the httpx :class:`Session`, which owns those rules;
this module only sends ``GET`` + ``Range`` with the headers it is given and reads the body.

It follows the same transport decisions as the session: the proxy from :func:`proxy_for` (a CONNECT
tunnel for https, absolute-URI requests for http), the same TLS context (:func:`ssl_context`), the connect
timeout, and the stall timeout on every read.

:class:`Body` is what the download reads either way: :class:`FastBody` over this module's response,
:class:`HttpxBody` over the session's.

Thread-safety: one :class:`RangeClient` per worker thread (it keeps that thread's keep-alive connections).
"""
from __future__ import annotations

import base64
import http.client
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import httpx

from pyollama.store.registry.session import proxy_for, ssl_context


class RangeClient:
    """Keep-alive ``http.client`` connections of one worker, keyed by (scheme, host, proxy)."""

    def __init__(self, user_agent: str, connect_timeout: float, read_timeout: float):
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._conns: dict[tuple[str, str, str | None], http.client.HTTPConnection] = {}

    def _connection(self, url: str) -> tuple[http.client.HTTPConnection, str]:
        """The connection for ``url`` and the request target to send on it."""
        p = urlsplit(url)
        proxy = proxy_for(url)
        key = (p.scheme, p.netloc, proxy)
        target = (p.path or "/") + (f"?{p.query}" if p.query else "")
        conn = self._conns.get(key)
        if conn is None:
            host, port = p.hostname or "", p.port
            if proxy:
                pp = urlsplit(proxy)
                headers = {}
                if pp.username:
                    cred = f"{unquote(pp.username)}:{unquote(pp.password or '')}".encode()
                    headers["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode()
                if p.scheme == "https":
                    conn = http.client.HTTPSConnection(pp.hostname or "", pp.port or 80,
                                                       timeout=self.connect_timeout, context=ssl_context())
                    conn.set_tunnel(host, port or 443, headers=headers)
                else:
                    conn = http.client.HTTPConnection(pp.hostname or "", pp.port or 80,
                                                      timeout=self.connect_timeout)
            elif p.scheme == "https":
                conn = http.client.HTTPSConnection(host, port or 443, timeout=self.connect_timeout,
                                                   context=ssl_context())
            else:
                conn = http.client.HTTPConnection(host, port or 80, timeout=self.connect_timeout)
            self._conns[key] = conn
        if proxy and p.scheme == "http":
            target = url   # a forward proxy takes the absolute URI
        return conn, target

    def get(self, url: str, headers: dict[str, str]) -> http.client.HTTPResponse:
        """Send ``GET url`` and return the response (headers read, body not). Raises OSError or
        http.client.HTTPException; a failed connection is dropped so the next call reconnects."""
        conn, target = self._connection(url)
        hdrs = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", **headers}
        try:
            if conn.sock is None:
                conn.connect()
            conn.sock.settimeout(self.read_timeout)   # every recv: a stall raises TimeoutError
            conn.request("GET", target, headers=hdrs)
            return conn.getresponse()
        except BaseException:
            self.drop(url)
            raise

    def drop(self, url: str) -> None:
        p = urlsplit(url)
        for key in [k for k in self._conns if k[0] == p.scheme and k[1] == p.netloc]:
            self._conns.pop(key).close()

    def close(self) -> None:
        for c in self._conns.values():
            c.close()
        self._conns.clear()


class Body:
    """A response body read with ``readinto``, from either HTTP stack."""

    status: int

    def header(self, name: str) -> str | None:
        raise NotImplementedError

    def readinto(self, view: memoryview) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class FastBody(Body):
    def __init__(self, resp: http.client.HTTPResponse, client: RangeClient, url: str):
        self.resp = resp
        self.status = resp.status
        self._client = client
        self._url = url

    def header(self, name: str) -> str | None:
        return self.resp.getheader(name)

    def readinto(self, view: memoryview) -> int:
        return self.resp.readinto(view)

    def close(self) -> None:
        if not self.resp.isclosed():
            # Unread body bytes would be taken for the next response: drop the connection instead.
            self.resp.close()
            self._client.drop(self._url)


class HttpxBody(Body):
    def __init__(self, resp: httpx.Response):
        self.resp = resp
        self.status = resp.status_code
        self._chunks: Iterator[bytes] | None = None
        self._rest = b""

    def header(self, name: str) -> str | None:
        return self.resp.headers.get(name)

    def readinto(self, view: memoryview) -> int:
        if not self._rest:
            if self._chunks is None:
                self._chunks = self.resp.iter_raw()
            self._rest = next(self._chunks, b"")
        n = min(len(view), len(self._rest))
        view[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n

    def close(self) -> None:
        self.resp.close()
