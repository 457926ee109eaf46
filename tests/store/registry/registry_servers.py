"""Real servers on loopback for the registry tests: Debian's ``docker-registry`` (distribution 2.8), a JWT
token endpoint for its bearer auth, a byte-level fault proxy, an HTTP CONNECT proxy and a static "CDN"
that serves the registry's own storage for the redirect middleware. Nothing here answers on the
registry's behalf: the proxies only forward (or cut, or slow) bytes.

Every server binds 127.0.0.1 with a kernel-chosen port. The registry process is started in its own
session with a parent-death signal, stopped by PID (SIGTERM, then SIGKILL), and also reaped at interpreter
exit, so it never outlives the test session.
"""
from __future__ import annotations

import atexit
import base64
import ctypes
import datetime as dt
import hashlib
import http.server
import json
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx

INSTALL_HINT = ("docker-registry is not installed: run `bash scripts/registry.sh` "
                "(apt-get install -y --no-install-recommends docker-registry)")

_LIVE: set[subprocess.Popen] = set()


def _reap_all() -> None:
    for p in list(_LIVE):
        _stop_process(p)


atexit.register(_reap_all)


def _stop_process(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    _LIVE.discard(p)


_prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl   # loaded here: the child must not import


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL the registry if the test process dies (even by SIGKILL). Only a plain C call
    runs in the forked child, so the test's threads cannot deadlock it."""
    _prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def registry_binary() -> str:
    exe = shutil.which("docker-registry")
    if exe is None:
        raise RuntimeError(INSTALL_HINT)
    return exe


# --- access log ------------------------------------------------------------------------------------
_ACCESS_RE = re.compile(r'^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) (\d+) "[^"]*" "([^"]*)"$')


@dataclass
class Access:
    method: str
    path: str
    status: int
    bytes: int
    agent: str


# --- the registry ----------------------------------------------------------------------------------
class Registry:
    """``docker-registry serve`` with a per-test config. ``url`` is http://127.0.0.1:<port>."""

    def __init__(self, root: Path, *, auth: dict | None = None, redirect_to: str | None = None,
                 tls: tuple[Path, Path] | None = None):
        self.root = root
        self.storage = root / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.yml"
        self.log_path = root / "registry.log"
        self.auth = auth
        self.redirect_to = redirect_to
        self.tls = tls
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._log_offset = 0

    # lifecycle
    def _write_config(self, port: int) -> None:
        cfg = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.storage)}, "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "pyollama-test"},
        }
        if self.auth:
            cfg["auth"] = self.auth
        if self.redirect_to:
            cfg["middleware"] = {"storage": [{"name": "redirect", "options": {"baseurl": self.redirect_to}}]}
        if self.tls:
            cfg["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        # YAML is a superset of JSON: no YAML library needed.
        self.config.write_text(json.dumps(cfg))

    def start(self) -> Registry:
        exe = registry_binary()
        self._write_config(self.port)   # 0 the first time; the same port after stop() (an outage)
        log = open(self.log_path, "ab")
        self._log_offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen([exe, "serve", str(self.config)], stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True,
                                     preexec_fn=_die_with_parent)  # noqa: PLW1509
        log.close()
        _LIVE.add(self.proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = self.log_path.read_bytes()[self._log_offset:].decode(errors="replace")
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", text)
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.proc.returncode}:\n{text[-2000:]}")
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("docker-registry did not report its port within 10 s")
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/v2/", verify=False, timeout=1)
                if r.status_code in (200, 401):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer /v2/ within 10 s")

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc)
            self.proc = None
        if self.port:
            with socket.socket() as s:   # nothing may be left listening
                assert s.connect_ex(("127.0.0.1", self.port)) != 0, f"port {self.port} still open"

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    # inspection
    def log_mark(self) -> int:
        """A position in the log; ``access_log(since=mark)`` returns what came after it."""
        return self.log_path.stat().st_size

    def access_log(self, since: int = 0) -> list[Access]:
        text = self.log_path.read_bytes()[since:].decode(errors="replace")
        out = []
        for line in text.splitlines():
            m = _ACCESS_RE.match(line)
            if m:
                out.append(Access(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), m.group(5)))
        return out

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def blob_path(self, digest: str) -> Path:
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"


# --- bearer token endpoint -------------------------------------------------------------------------
def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class TokenServer:
    """Distribution's token auth: checks basic credentials and issues ES256 JWTs (x5c = a self-signed
    P-256 cert that is also the registry's rootcertbundle). Records every request's scopes."""

    SERVICE = "pyollama-registry"
    ISSUER = "pyollama-test-issuer"

    def __init__(self, root: Path, users: dict[str, str], *, anonymous_pull: bool = False):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users = users
        self.anonymous_pull = anonymous_pull
        self.requests: list[dict] = []
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyollama test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
                .sign(self.key, hashes.SHA256()))
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.bundle = root / "token-bundle.pem"
        self.bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._hashes, self._ec = hashes, ec
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):   # quiet
                pass

            def do_GET(self):
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.SERVICE, "issuer": self.ISSUER,
                          "rootcertbundle": str(self.bundle)}}

    def _user(self, header: str | None) -> str | None:
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == pw and pw else None

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        q = parse_qs(urlsplit(h.path).query)
        scopes = q.get("scope", [])
        header = h.headers.get("Authorization")
        user = self._user(header)
        self.requests.append({"scopes": scopes, "service": q.get("service", [""])[0],
                              "authorized": user is not None, "had_auth": header is not None})
        if user is None and not (self.anonymous_pull and header is None):
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            h.send_response(401)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        access = []
        for s in scopes:
            for one in s.split(" "):
                typ, _, rest = one.partition(":")
                rname, _, actions = rest.rpartition(":")
                acts = [a for a in actions.split(",") if a]
                if user is None:
                    acts = [a for a in acts if a == "pull"]
                access.append({"type": typ, "name": rname, "actions": acts})
        now = int(time.time())
        claims = {"iss": self.ISSUER, "sub": user or "", "aud": self.SERVICE, "exp": now + 300,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        head = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(self.cert_der).decode()]}
        signing = f"{_b64url(json.dumps(head).encode())}.{_b64url(json.dumps(claims).encode())}"
        der = self.key.sign(signing.encode(), self._ec.ECDSA(self._hashes.SHA256()))
        r, s_ = decode_dss_signature(der)
        token = f"{signing}.{_b64url(r.to_bytes(32, 'big') + s_.to_bytes(32, 'big'))}"
        self.tokens_issued = getattr(self, "tokens_issued", []) + [token]
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def htpasswd_auth(root: Path, user: str, password: str) -> dict:
    """The registry's htpasswd auth block with a bcrypt line (2.8 accepts only bcrypt)."""
    import bcrypt

    path = root / "htpasswd"
    path.write_text(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
    return {"htpasswd": {"realm": "pyollama-test", "path": str(path)}}


# --- TLS -------------------------------------------------------------------------------------------
def make_tls(root: Path, names: list[str]) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for ``names`` (DNS names or IPs). Returns (cert, key, ca)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyollama test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for n in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            alt.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (x509.CertificateBuilder().subject_name(subject)
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = root / "tls-cert.pem", root / "tls-key.pem", root / "tls-ca.pem"
    paths[0].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return paths


# --- byte-level proxies ----------------------------------------------------------------------------
class FaultProxy:
    """Forwards TCP to ``127.0.0.1:<target_port>``. ``rate`` (bytes/s, 0 = unlimited) slows the
    registry→client direction; ``cut_after`` closes the connection that carries the byte past that
    many (counted over all connections), once; ``cut_up_after`` does the same client→registry (an
    upload cut mid-body). ``down_bytes``/``up_bytes`` count what was delivered."""

    def __init__(self, target_port: int, *, connect_map: bool = False):
        self.target_port = target_port
        self.connect_map = connect_map   # HTTP CONNECT proxy mode (HTTPS_PROXY): tunnel to the asked port
        self.rate = 0.0
        self.cut_after: int | None = None
        self.cut_up_after: int | None = None
        self.down_bytes = 0
        self.up_bytes = 0
        self.connections = 0
        self.connect_targets: list[str] = []
        self.cuts = 0
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        port = self.target_port
        if self.connect_map:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    client.close()
                    return
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            method, target, _ = line.split(" ", 2)
            self.connect_targets.append(target)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                client.close()
                return
            port = int(target.rsplit(":", 1)[1])   # any host name maps to loopback
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        if self.connect_map:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
        self._pump(upstream, client, True)

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while True:
                chunk = src.recv(65536)
                if not chunk:
                    break
                with self._lock:
                    limit = self.cut_after if down else self.cut_up_after
                    done = self.down_bytes if down else self.up_bytes
                    if limit is not None and done + len(chunk) > limit:
                        keep = max(limit - done, 0)
                        if down:
                            self.cut_after = None
                            self.down_bytes += keep
                        else:
                            self.cut_up_after = None
                            self.up_bytes += keep
                        self.cuts += 1
                        if keep:
                            dst.sendall(chunk[:keep])
                        raise ConnectionResetError("cut by the fault proxy")
                    if down:
                        self.down_bytes += len(chunk)
                    else:
                        self.up_bytes += len(chunk)
                if down and self.rate:
                    time.sleep(len(chunk) / self.rate)
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self._closed = True
        self.sock.close()


# --- the "CDN" behind the redirect middleware ------------------------------------------------------
class BlobServer:
    """Serves files of ``root`` (the registry's storage) by path, with single ``Range`` support unless
    ``ranges`` is False. Records (method, path, Authorization present) per request."""

    def __init__(self, root: Path, *, ranges: bool = True):
        self.root = root
        self.ranges = ranges
        self.requests: list[tuple[str, str, bool, str]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_HEAD(self):
                server._handle(self, body=False)

            def do_GET(self):
                server._handle(self, body=True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def _handle(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = urlsplit(h.path).path
        self.requests.append((h.command, path, "Authorization" in h.headers, h.headers.get("Range", "")))
        f = (self.root / path.lstrip("/")).resolve()
        if not f.is_file() or self.root.resolve() not in f.parents:
            h.send_response(404)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        size = f.stat().st_size
        start, end, status = 0, size - 1, 200
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", h.headers.get("Range", ""))
        if self.ranges and m:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else size - 1, size - 1)
            status = 206
        h.send_response(status)
        h.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        h.end_headers()
        if body:
            with open(f, "rb") as fh:
                fh.seek(start)
                left = end - start + 1
                while left:
                    data = fh.read(min(left, 1 << 20))
                    if not data:
                        break
                    h.wfile.write(data)
                    left -= len(data)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = [
    "Access",
    "BlobServer",
    "FaultProxy",
    "Registry",
    "TokenServer",
    "free_port",
    "htpasswd_auth",
    "make_tls",
]
