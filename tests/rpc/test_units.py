"""pyollama.rpc without a model: endpoints, the handshake against fake peers, placement glue."""
from __future__ import annotations

import socket
import struct
import time

import pytest

from pyollama import rpc
from pyollama.errors import InvalidRequest, WorkerUnavailable
from pyollama.runner.types import RunnerSpec
from pyollama.scheduler import fit
from pyollama.scheduler.memory import Gpu, Memory
from pyollama.scheduler.plan import tensor_split
from tests.rpc.conftest import Peer, hello, recv_cmd


def test_parse_endpoints():
    assert rpc.parse_endpoints("10.0.0.2:50052, host-b:1,10.0.0.2:50052,") == ("10.0.0.2:50052", "host-b:1")
    assert rpc.parse_endpoints("") == ()
    for bad, word in [("10.0.0.2", "host:port"), (":50052", "host:port"), ("h:0", "1 to 65535"),
                      ("h:http", "1 to 65535"), ("::1:50052", "host:port"), ("h:1:2", "IPv6")]:
        with pytest.raises(ValueError, match=word):
            rpc.parse_endpoints(bad)


def test_labels_round_trip():
    assert rpc.label("10.0.0.2:50052") == "RPC[10.0.0.2:50052]"
    assert rpc.label("h:1", 2) == "RPC[h:1]#2"
    assert rpc.endpoint_of("RPC[h:1]#2") == "h:1"
    assert rpc.endpoint_of("CUDA0") is None and rpc.endpoint_of("RPC0") is None


def test_protocol_matches_the_build():
    from pyollama import _native

    assert (rpc.PROTOCOL_MAJOR, rpc.PROTOCOL_MINOR) == _native.RPC_PROTOCOL[:2]


@pytest.fixture
def peer():
    made = []

    def make(handler):
        made.append(Peer(handler))
        return made[-1]

    yield make
    for p in made:
        p.close()


def test_probe_reads_devices(peer):
    def handler(conn):
        hello((rpc.PROTOCOL_MAJOR, 0, 0))(conn)
        assert recv_cmd(conn) == (rpc.CMD_DEVICE_COUNT, b"")
        conn.sendall(struct.pack("<QI", 4, 2))
        for i in range(2):
            assert recv_cmd(conn) == (rpc.CMD_GET_DEVICE_MEMORY, struct.pack("<I", i))
            conn.sendall(struct.pack("<QQQ", 16, (i + 1) << 30, 8 << 30))

    w = rpc.probe(peer(handler).endpoint)
    assert w.version == (rpc.PROTOCOL_MAJOR, 0, 0)
    assert w.devices == (rpc.Device(0, 1 << 30, 8 << 30), rpc.Device(1, 2 << 30, 8 << 30))


def test_probe_names_another_protocol_version(peer):
    p = peer(hello((rpc.PROTOCOL_MAJOR - 1, 2, 0)))
    with pytest.raises(WorkerUnavailable, match=rf"RPC worker {p.endpoint}: speaks RPC protocol "
                                                rf"{rpc.PROTOCOL_MAJOR - 1}\.2\.0; this build speaks") as e:
        rpc.probe(p.endpoint)
    assert e.value.endpoint == p.endpoint and e.value.status == 502


def test_probe_of_a_peer_that_closes(peer):
    def handler(conn):
        recv_cmd(conn)          # reads the HELLO, then hangs up without a word
        conn.close()

    p = peer(handler)
    with pytest.raises(WorkerUnavailable, match="closed the connection"):
        rpc.probe(p.endpoint)


def test_probe_of_a_silent_peer_is_bounded(peer):
    p = peer(lambda conn: None)          # accepts, reads nothing, never answers
    t0 = time.monotonic()
    with pytest.raises(WorkerUnavailable, match="accepted the connection but did not answer"):
        rpc.probe(p.endpoint, timeout=0.5)
    assert time.monotonic() - t0 < 3


def test_probe_of_a_closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]           # bound, not listening: refused
        with pytest.raises(WorkerUnavailable, match=rf"127\.0\.0\.1:{port}: Connection refused"):
            rpc.probe(f"127.0.0.1:{port}")


def test_pool_skips_held_and_dead_workers(peer, caplog):
    calls = []

    def handler(conn):
        calls.append(1)
        hello((rpc.PROTOCOL_MAJOR, 0, 0))(conn)
        recv_cmd(conn)
        conn.sendall(struct.pack("<QI", 4, 1))
        recv_cmd(conn)
        conn.sendall(struct.pack("<QQQ", 16, 1 << 30, 2 << 30))

    a, b = peer(handler), peer(handler)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
        held = {b.endpoint}
        pool = rpc.Pool([a.endpoint, b.endpoint, dead], held=lambda: held)
        assert [w.endpoint for w in pool.available()] == [a.endpoint]
        assert [w.endpoint for w in pool.available()] == [a.endpoint]
        held.clear()
        assert [w.endpoint for w in pool.available()] == [a.endpoint, b.endpoint]
    warned = [r for r in caplog.records if dead in r.getMessage()]
    assert len(warned) == 1 and "skipping it" in warned[0].getMessage()     # once, not on every probe
    assert len(calls) == 4


def test_tensor_split_option():
    assert tensor_split(None) == () and tensor_split("") == ()
    assert tensor_split("3, 1") == (3.0, 1.0) and tensor_split("0/1/1") == (0.0, 1.0, 1.0)
    for bad in ("a,b", "-1,2", "0,0", "nan,1", "inf,1", ",".join("1" * 17)):
        with pytest.raises(InvalidRequest, match="tensor_split"):
            tensor_split(bad)


def test_with_workers_registers_only_used_workers():
    mem = Memory(8 << 30, 16 << 30, (Gpu("RPC[a:1]", 4 << 30, 4 << 30), Gpu("RPC[b:2]", 4 << 30, 4 << 30)))
    spec = RunnerSpec(model_path="m.gguf", num_gpu=10)
    assert fit.with_workers(spec, mem).rpc_servers == ("a:1", "b:2")
    assert fit.with_workers(RunnerSpec(model_path="m.gguf", num_gpu=10, devices=("RPC[b:2]",)),
                            mem).rpc_servers == ("b:2",)
    assert fit.with_workers(RunnerSpec(model_path="m.gguf", num_gpu=0), mem).rpc_servers == ()
    assert fit.with_workers(spec, Memory(1, 1, (Gpu("CUDA0", 1, 1),))).rpc_servers == ()


def test_processor_column_names_workers():
    from pyollama.cli import fmt

    cpu = {"name": "CPU", "type": "cpu", "size": 10}
    w1 = {"name": "RPC[a:1]", "type": "gpu", "size": 45}
    w2 = {"name": "RPC[b:2]", "type": "gpu", "size": 45}
    assert fmt.processor(100, 90, [cpu, w1, w2]) == "10%/90% CPU/2 RPC"
    assert fmt.processor(100, 100, [w1]) == "100% 1 RPC"
    assert fmt.processor(100, 100, [{"name": "CUDA0", "type": "gpu", "size": 50}, w1]) == "100% GPU+1 RPC"
    assert fmt.processor(100, 100, []) == "100% GPU"


def test_pool_rests_a_silent_worker(peer):
    p = peer(lambda conn: None)             # accepts, never answers
    pool = rpc.Pool([p.endpoint], timeout=0.3, retry_after=1.0)
    t0 = time.monotonic()
    assert pool.available() == []
    assert time.monotonic() - t0 >= 0.3 and len(p.conns) == 1
    t0 = time.monotonic()
    assert pool.available() == []           # resting: not asked, no timeout paid
    assert time.monotonic() - t0 < 0.2 and len(p.conns) == 1
    time.sleep(1.0)
    assert pool.available() == [] and len(p.conns) == 2
