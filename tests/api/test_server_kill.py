"""Crash safety of the server (issue 11): SIGKILL ``pyollama serve`` in the middle of ``/api/create``,
``/api/pull`` and ``/api/push``, start it again on the same store, check the store, repeat the operation.

Kill points are drawn with a seeded RNG, stratified over the operation so that early and late points are
both covered:

* ``point``: the server runs with ``PYOLLAMA_STORE_CRASH_AT=N`` (pyollama/store/fsutil.py) and kills
  itself at its N-th write/fsync/rename/unlink; N is drawn among the points that a reference run counted
  with ``PYOLLAMA_STORE_CRASH_TRACE`` (create and pull: a push writes nothing locally);
* ``delay``: SIGKILL from here, a random time after the operation's first request (all three);
* ``event``: SIGKILL right after the k-th line of the progress stream (push);
* ``pinned``: a crash point named by its label, where a bug was once found (kept as regressions).

After every kill a fresh server starts on the store, pruning at start-up every other time (Ollama's
default) and not on the others, and :func:`check_store` verifies: every manifest parses and each blob it
references exists with the sha256 of its name; no file under a final blob name has another hash; anything
else in ``blobs/`` is a partial download or a temp file, and ``HEAD /api/blobs`` does not report a blob
that only exists as a partial; ``/api/tags`` lists exactly the complete manifests, with their digests;
``/api/show`` answers for each. Then the operation is repeated and must succeed with the expected result.

``PYOLLAMA_KILL_POINTS`` sets the kills per operation (default 5, about a minute for all three; the issue's
acceptance run is ``PYOLLAMA_KILL_POINTS=24``), ``PYOLLAMA_KILL_SEED`` the draw, and
``PYOLLAMA_KILL_REPORT=<file>`` writes each kill's point, phase and outcome as JSON.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pyollama.errors import InvalidModelName
from pyollama.store import CreateRequest, Manifest, ModelName, Store, create
from pyollama.store.blobs import BLOB_FILE_RE
from pyollama.store.registry import pull, push
from tests.api.conftest import Server, _registry_servers
from tests.store.store_helpers import sha256_file
from tests.tiny_gguf import write_tiny_gguf

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("PYOLLAMA_KILL_POINTS", "") or 5)
SEED = int(os.environ.get("PYOLLAMA_KILL_SEED", "") or 11)
REPORT = os.environ.get("PYOLLAMA_KILL_REPORT", "")
LOCK = ".pyollama-store.lock"
PULL_RATE = 8 << 20          # bytes/s per connection through the proxy while a delay kill is due

Line = dict[str, Any]
Op = Callable[[Server, Callable[[Line], None]], None]


@dataclass
class Kill:
    kind: str                 # "point" | "delay" | "event" | "pinned"
    value: float              # crash point number, seconds after the start, or progress line number
    prune: bool               # whether the restarted server prunes at start-up
    label: str = ""           # "pinned": the crash point's label (what PYOLLAMA_STORE_CRASH_ON matches)
    where: str = ""           # the crash point's label, or the last progress line seen before the kill
    seconds: float = 0.0      # the whole round: kill, restart, checks, repeat
    ok: bool = False
    problem: str = ""

    def describe(self) -> str:
        v = {"delay": f"{self.value:.3f}s", "pinned": repr(self.label)}.get(self.kind, str(int(self.value)))
        return f"{self.kind} {v} ({self.where or '?'}), restart {'with' if self.prune else 'without'} prune"

    def env(self, trace: Path) -> dict[str, str]:
        """The server's crash hook settings for this kill (none for kills sent from here)."""
        if self.kind == "point":
            return {"PYOLLAMA_STORE_CRASH_AT": str(int(self.value)), "PYOLLAMA_STORE_CRASH_TRACE": str(trace)}
        if self.kind == "pinned":
            return {"PYOLLAMA_STORE_CRASH_ON": self.label, "PYOLLAMA_STORE_CRASH_TRACE": str(trace)}
        return {}


# --- servers and operations ------------------------------------------------------------------------
class Servers:
    """Starts servers on a store with numbered log files; the killed one prunes at start-up (nothing to
    prune in a consistent store) so that create/pull also remove a replaced model's blobs, as by default."""

    def __init__(self, logs: Path):
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self._n = itertools.count()
        self.live: list[Server] = []

    def start(self, root: Path, *, prune: bool = True, **env: str) -> Server:
        s = Server({"PYOLLAMA_MODELS": str(root), "PYOLLAMA_NOPRUNE": "false" if prune else "1",
                    "PYOLLAMA_REGISTRY_AUTH_FILE": str(self.logs / "no-registry-auth.json"), **env},
                   self.logs / f"server-{next(self._n)}.log")
        self.live.append(s)
        return s

    def stop_all(self) -> None:
        for s in self.live:
            s.stop()
        self.live.clear()

    def kill_and_restart(self, template: Path, root: Path, kill: Kill, op: Op) -> tuple[Server, dict[str, bytes]]:
        """Copy ``template`` to ``root``, run ``op`` on a server over it until ``kill`` strikes, restart on
        the same store: the restarted server and check_store's complete models."""
        shutil.copytree(template, root)
        trace = root.with_name(root.name + "-trace")
        srv = self.start(root, **kill.env(trace))
        kill_round(srv, kill, op, trace)
        again = self.start(root, prune=kill.prune)
        try:
            return again, check_store(root, again, srv.proc.pid if kill.prune else None)
        except BaseException:
            again.stop()
            raise


def stream(srv: Server, path: str, body: dict[str, Any], on_line: Callable[[Line], None]) -> None:
    """POST a streaming request; every line goes to ``on_line``; it must end in success."""
    last: Line = {}
    with srv.http.stream("POST", path, json={**body, "stream": True}) as r:
        if r.status_code != 200:
            raise AssertionError(f"{path}: {r.status_code} {r.read().decode(errors='replace')}")
        for raw in r.iter_lines():
            if raw.strip():
                last = json.loads(raw)
                if "error" in last:
                    raise AssertionError(f"{path}: {last['error']}")
                on_line(last)
    if last != {"status": "success"}:
        raise AssertionError(f"{path} ended without success: {last}")


def phase(line: Line) -> str:
    if "total" in line:
        return f"{line['status']} {line.get('completed', 0)}/{line['total']}"
    return str(line.get("status", line))


def kill_round(srv: Server, kill: Kill, op: Op, trace: Path | None) -> None:
    """Run ``op`` on ``srv`` until the kill; leaves the server dead (SIGKILL) and ``kill.where`` set."""
    seen: list[str] = []

    def on_line(line: Line) -> None:
        seen.append(phase(line))
        if kill.kind == "event" and len(seen) == int(kill.value):
            srv.proc.kill()

    timer = threading.Timer(kill.value, srv.proc.kill) if kill.kind == "delay" else None
    if timer is not None:
        timer.start()
    finished = False
    try:
        op(srv, on_line)
        finished = True
    except httpx.TransportError:
        pass
    finally:
        if timer is not None:
            timer.join()
    if kill.kind in ("point", "pinned"):
        try:
            srv.proc.wait(30)
        except subprocess.TimeoutExpired:   # the point was not reached: stop it here, say so below
            srv.proc.kill()
    elif srv.proc.poll() is None:           # the line to kill after never came: kill the idle server
        srv.proc.kill()
    srv.proc.wait()
    srv.stop()
    assert srv.proc.returncode == -9, f"server exited with {srv.proc.returncode}, not by SIGKILL"
    if kill.kind in ("point", "pinned"):
        labels = [x.split(" ", 1) for x in trace.read_text().splitlines()] if trace and trace.exists() else []
        hit = bool(labels) and (labels[-1][1] == kill.label if kill.kind == "pinned"
                                else labels[-1][0] == str(int(kill.value)))
        kill.where = f"{labels[-1][1]} (#{labels[-1][0]})" if hit else f"not reached ({len(labels)} points)"
        # A regression case that no longer reaches its point would pass without testing anything.
        assert hit or kill.kind == "point", f"the pinned crash point {kill.label!r} was not reached"
    else:
        kill.where = ("after " if finished else "") + (seen[-1] if seen else "before the first line")


# --- the consistency check -------------------------------------------------------------------------
def check_store(root: Path, srv: Server, dead_pid: int | None = None) -> dict[str, bytes]:
    """The checks of the module docstring; returns the complete models (display name → manifest bytes).
    ``dead_pid``: the killed server, whose temp files a pruning restart must have removed."""
    models: dict[str, bytes] = {}
    mdir, bdir = root / "manifests", root / "blobs"
    for p in sorted(mdir.rglob("*")) if mdir.is_dir() else []:
        if not p.is_file():
            continue
        if p.name.startswith(".tmp-"):
            assert dead_pid is None or not p.name.startswith(f".tmp-{dead_pid}-"), f"prune left {p}"
            continue
        try:
            name = ModelName.from_parts(p.relative_to(mdir).parts)
        except (InvalidModelName, TypeError, ValueError):
            raise AssertionError(f"stray file among the manifests: {p.relative_to(root)}") from None
        raw = p.read_bytes()
        m = Manifest.parse(raw)            # raises InvalidManifest on a torn file
        for d in sorted(m.blob_digests()):
            blob = bdir / d.replace(":", "-")
            assert blob.is_file(), f"{name.display()} references {d}, which is not stored"
        models[name.display()] = raw
    for p in sorted(bdir.iterdir()) if bdir.is_dir() else []:
        if m := BLOB_FILE_RE.fullmatch(p.name):
            assert sha256_file(p) == m.group(1), f"{p.name} does not hold the bytes of its name"
        elif p.name.startswith(".tmp-"):
            assert dead_pid is None or not p.name.startswith(f".tmp-{dead_pid}-"), f"prune left {p.name}"
        elif (part := BLOB_FILE_RE.match(p.name)) and p.name[len(part.group(0)):].startswith("-partial"):
            if not (bdir / part.group(0)).exists():
                r = srv.request("HEAD", f"/api/blobs/sha256:{part.group(1)}")
                assert r.status_code == 404, f"a partial download is reported as a blob: {p.name}"
        else:
            raise AssertionError(f"stray file among the blobs: {p.name}")
    r = srv.get("/api/tags")
    assert r.status_code == 200, r.text
    listed = {x["name"]: x["digest"] for x in r.json()["models"]}
    assert listed == {n: hashlib.sha256(raw).hexdigest() for n, raw in models.items()}, \
        f"/api/tags lists {sorted(listed)}, the complete manifests are {sorted(models)}"
    for n in models:
        r = srv.post("/api/show", json={"model": n})
        assert r.status_code == 200 and r.json().get("details"), f"/api/show {n}: {r.status_code} {r.text}"
    return models


def tree(root: Path) -> dict[str, str]:
    """Relative path → sha256 of every file under ``root`` (the lock file left out)."""
    return {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != LOCK}


# --- drawing the kill points -----------------------------------------------------------------------
def stratified(rng: random.Random, lo: float, hi: float, k: int, *, whole: bool) -> list[float]:
    """``k`` draws, one from each of ``k`` equal slices of [lo, hi]: early and late points both come."""
    out = []
    for j in range(k):
        a, b = lo + (hi - lo) * j / k, lo + (hi - lo) * (j + 1) / k
        out.append(float(rng.randint(int(a), max(int(a), int(b) - 1))) if whole else rng.uniform(a, b))
    return out


def plan(rng: random.Random, n: int, first: str, first_hi: int, duration: float) -> list[Kill]:
    """Half the kills (rounded up) of kind ``first`` (crash points or progress lines, 1..first_hi), the
    others at delays within the measured ``duration``; restarts alternate prune on/off."""
    k1 = (n + 1) // 2
    values = [(first, v) for v in stratified(rng, 1, first_hi + 1, k1, whole=True)]
    values += [("delay", v) for v in stratified(rng, 0.0, duration, n - k1, whole=False)]
    return [Kill(kind, v, prune=i % 2 == 0) for i, (kind, v) in enumerate(values)]


def rounds(op_name: str, kills: list[Kill], one: Callable[[int, Kill], None]) -> None:
    """Run every kill's round; a failing one is recorded and the others still run; report, then assert."""
    for i, kill in enumerate(kills):
        t0 = time.monotonic()
        try:
            one(i, kill)
            kill.ok = True
        except Exception as e:  # noqa: BLE001 - recorded, the other kills still run, asserted below
            kill.problem = f"{type(e).__name__}: {e}"
        kill.seconds = round(time.monotonic() - t0, 2)
    ok = sum(k.ok for k in kills)
    print(f"\n{op_name}: {ok}/{len(kills)} consistent restarts (seed {SEED})")
    for k in kills:
        print(f"  {'ok  ' if k.ok else 'FAIL'} {k.describe()} {k.seconds}s {k.problem}")
    if REPORT:
        path = Path(REPORT)
        data = json.loads(path.read_text()) if path.exists() else {}
        data[op_name] = {"seed": SEED, "consistent": ok, "kills": [asdict(k) for k in kills]}
        path.write_text(json.dumps(data, indent=1))
    bad = [f"{k.describe()}: {k.problem}" for k in kills if not k.ok]
    assert not bad, f"{op_name}: {len(bad)} of {len(kills)} kills broke the store or the repeat:\n" + \
        "\n".join(bad)


def manifest_bytes(root: Path, name: str) -> bytes:
    return Store(root).manifest(name).bytes()


def run_all(events) -> None:
    for _ in events:
        pass


# --- create ----------------------------------------------------------------------------------------
def create_op(blob: bytes) -> Op:
    """What ``pyollama create`` does for a GGUF file: upload it (HEAD first), then create from it."""
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()

    def op(srv: Server, on_line: Callable[[Line], None]) -> None:
        on_line({"status": "uploading blob"})
        if srv.request("HEAD", f"/api/blobs/{digest}").status_code != 200:
            r = srv.post(f"/api/blobs/{digest}", content=blob)
            assert r.status_code == 201, f"blob upload: {r.status_code} {r.text}"
        on_line({"status": "blob uploaded"})
        stream(srv, "/api/create", {"model": "m", "files": {"new.gguf": digest}, "system": "new",
                                    "parameters": {"seed": 7}}, on_line)
    return op


def test_kill_create(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    servers = Servers(tmp_path / "logs")
    old_gguf = write_tiny_gguf(tmp_path / "old.gguf", seed=1, size_kib=1000)
    blob = write_tiny_gguf(tmp_path / "new.gguf", seed=2, size_kib=3000).read_bytes()  # 3 x 1 MiB writes
    template = tmp_path / "template"
    run_all(create(Store(template), CreateRequest(model="m", from_path=old_gguf, system="old")))
    old = manifest_bytes(template, "m")
    op = create_op(blob)
    # Reference run: counts the crash points, times the operation, gives the new manifest.
    ref, trace = tmp_path / "ref", tmp_path / "trace-ref"
    shutil.copytree(template, ref)
    srv = servers.start(ref, PYOLLAMA_STORE_CRASH_TRACE=str(trace))
    t0 = time.monotonic()
    op(srv, lambda line: None)
    duration = time.monotonic() - t0
    srv.stop()
    points = trace.read_text().splitlines()
    new = manifest_bytes(ref, "m")
    assert new != old and len(points) >= 20, points

    def one(i: int, kill: Kill) -> None:
        root = tmp_path / f"kill-{i}"
        again, got = servers.kill_and_restart(template, root, kill, op)
        try:
            assert got.get("m:latest") in (old, new), "m is neither the old nor the new model"
            op(again, lambda line: None)
            assert check_store(root, again)["m:latest"] == new, "the repeated create made another model"
        finally:
            again.stop()
        shutil.rmtree(root)

    try:
        rounds("create", plan(rng, KILLS, "point", len(points), duration), one)
    finally:
        servers.stop_all()


# --- pull ------------------------------------------------------------------------------------------
def pull_op(name: str) -> Op:
    def op(srv: Server, on_line: Callable[[Line], None]) -> None:
        stream(srv, "/api/pull", {"model": name, "insecure": True}, on_line)
    return op


def remainder(root: Path, m: Manifest) -> int:
    """Blob bytes a resuming pull still has to fetch: each missing blob less what its partial download's
    part states (``-partial-N``, when they tile the blob) say is already there."""
    left = 0
    for layer in m.all_layers():
        final = root / "blobs" / layer.digest.replace(":", "-")
        if final.is_file():
            continue
        partial = final.with_name(final.name + "-partial")
        states = sorted((json.loads(p.read_text()) for p in partial.parent.glob(partial.name + "-*")
                         if p.name[len(partial.name) + 1:].isdigit()), key=lambda s: s["Offset"])
        tiles = partial.is_file() and partial.stat().st_size == layer.size and states and \
            all(a["Offset"] + a["Size"] == b["Offset"] for a, b in itertools.pairwise(states)) and \
            states[0]["Offset"] == 0 and states[-1]["Offset"] + states[-1]["Size"] == layer.size
        left += layer.size - (sum(s["Completed"] for s in states) if tiles else 0)
    return left


def test_kill_pull(tmp_path: Path, registry) -> None:
    rng = random.Random(SEED + 1)
    servers = Servers(tmp_path / "logs")
    proxy = _registry_servers().FaultProxy(registry.port)
    try:
        # The registry's model: 18 MiB of weights, two ranged parts (16 + 2 MiB) with the default options.
        src = Store(tmp_path / "src")
        direct = f"{registry.host}/kill/m:v1"
        gguf = write_tiny_gguf(tmp_path / "pulled.gguf", seed=3, size_kib=18 << 10)
        run_all(create(src, CreateRequest(model=direct, from_path=gguf, system="pulled")))
        run_all(push(src, direct, insecure=True))
        remote = src.manifest(direct)
        # Pulled through the proxy (throttled while a delay kill is due), over an older model of that name.
        name = f"127.0.0.1:{proxy.port}/kill/m:v1"
        template = tmp_path / "template"
        old_gguf = write_tiny_gguf(tmp_path / "old.gguf", seed=1, size_kib=1000)
        run_all(create(Store(template), CreateRequest(model=name, from_path=old_gguf, system="old")))
        old = manifest_bytes(template, name)
        shown = ModelName.parse(name).display()
        op = pull_op(name)
        # Reference runs: an unthrottled one counts the crash points, a throttled one is timed.
        ref, trace = tmp_path / "ref", tmp_path / "trace-ref"
        shutil.copytree(template, ref)
        srv = servers.start(ref, PYOLLAMA_STORE_CRASH_TRACE=str(trace))
        op(srv, lambda line: None)
        points = trace.read_text().splitlines()
        assert manifest_bytes(ref, name) == remote.bytes()
        assert srv.request("DELETE", "/api/delete", json={"model": name}).status_code == 200
        proxy.rate = PULL_RATE
        t0 = time.monotonic()
        op(srv, lambda line: None)
        duration = time.monotonic() - t0
        proxy.rate = 0
        srv.stop()
        assert len(points) >= 20, points
        kills = plan(rng, KILLS, "point", len(points), duration)
        # Regression: killed between a blob's rename and the removal of its part states; the pruning
        # restart removes the (unreferenced) blob, and the stale states once claimed a finished download.
        model_blob = remote.layers[0].digest.replace(":", "-")
        kills.append(Kill("pinned", 0, prune=True, label=f"rename {model_blob}"))

        def one(i: int, kill: Kill) -> None:
            root = tmp_path / f"kill-{i}"
            proxy.rate = PULL_RATE if kill.kind == "delay" else 0     # so that delays land mid-download
            try:
                again, got = servers.kill_and_restart(template, root, kill, op)
            finally:
                proxy.rate = 0
            try:
                assert got.get(shown) in (old, remote.bytes()), "the tag is neither the old nor the new model"
                left = remainder(root, remote)
                before = proxy.down_bytes
                op(again, lambda line: None)
                fetched = proxy.down_bytes - before
                # Blob bytes plus manifest and headers: it resumed from the saved part states, no more.
                assert left <= fetched <= left + (32 << 10), \
                    f"the repeated pull fetched {fetched} bytes, {left} were missing"
                assert check_store(root, again)[shown] == remote.bytes()
            finally:
                again.stop()
            shutil.rmtree(root)

        rounds("pull", kills, one)
    finally:
        proxy.close()
        servers.stop_all()


# --- push ------------------------------------------------------------------------------------------
def push_op(name: str) -> Op:
    def op(srv: Server, on_line: Callable[[Line], None]) -> None:
        stream(srv, "/api/push", {"model": name, "insecure": True}, on_line)
    return op


def test_kill_push(tmp_path: Path, registry) -> None:
    rng = random.Random(SEED + 2)
    servers = Servers(tmp_path / "logs")
    template = tmp_path / "template"
    gguf = write_tiny_gguf(tmp_path / "pushed.gguf", seed=4, size_kib=12 << 10)
    source = f"{registry.host}/kill/source:latest"
    run_all(create(Store(template), CreateRequest(model=source, from_path=gguf, system="pushed")))

    def fresh(root: Path, tag: str) -> str:
        """A copy of the template with the model also under a repository of its own (a push to it uploads
        every blob: the registry scopes blobs by repository)."""
        shutil.copytree(template, root)
        name = f"{registry.host}/kill/{tag}:latest"
        Store(root).copy(source, name)
        return name

    # Reference run: progress lines and duration.
    ref = tmp_path / "ref"
    name = fresh(ref, "ref")
    srv = servers.start(ref)
    lines: list[Line] = []
    t0 = time.monotonic()
    push_op(name)(srv, lines.append)
    duration = time.monotonic() - t0
    srv.stop()
    assert len(lines) >= 4, lines

    def one(i: int, kill: Kill) -> None:
        root = tmp_path / f"kill-{i}"
        name = fresh(root, f"p{i}")
        local = manifest_bytes(root, name)
        before = tree(root)
        srv = servers.start(root)
        pid = srv.proc.pid
        kill_round(srv, kill, push_op(name), None)
        again = servers.start(root, prune=kill.prune)
        try:
            check_store(root, again, pid if kill.prune else None)
            assert tree(root) == before, "the killed push changed the local store"
            push_op(name)(again, lambda line: None)
        finally:
            again.stop()
        assert tree(root) == before, "the repeated push changed the local store"
        dst = Store(tmp_path / f"pulled-{i}")
        run_all(pull(dst, name, insecure=True))
        assert dst.manifest(name).bytes() == local
        for d in sorted(dst.manifest(name).blob_digests()):
            assert dst.blobs.verify(d), d
        shutil.rmtree(root)
        shutil.rmtree(dst.root)

    try:
        rounds("push", plan(rng, KILLS, "event", len(lines) - 1, duration), one)
    finally:
        servers.stop_all()
