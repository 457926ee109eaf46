"""Workers on other hosts: each in a network namespace of its own that the test makes, reached from the
head (the root namespace) only over a veth pair. Same identity and fault checks as on loopback."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.rpc import netns
from tests.rpc.conftest import MODEL, PROMPT, cluster, generate, stream_until_killed, unload

pytestmark = [pytest.mark.model, pytest.mark.slow]


def _bytes(host: netns.Host) -> int:
    """Bytes the root end of ``host``'s veth has sent and received."""
    stats = Path("/sys/class/net") / host.veth[0] / "statistics"
    return int((stats / "tx_bytes").read_text()) + int((stats / "rx_bytes").read_text())


@pytest.fixture(scope="module")
def hosts():
    why = netns.unavailable()
    if why:
        pytest.skip(why)
    made = []
    try:
        for i in range(2):
            made.append(netns.Host(i).start())
        yield made
    finally:
        for h in made:
            h.stop()


@pytest.fixture
def hosts_cluster(hosts, model_store, tmp_path):
    """A worker inside each namespace (bound to its veth address) and a head that lists them."""
    s, ws = cluster(model_store, tmp_path, hosts)
    yield s, ws
    s.stop()
    for w in ws:
        w.stop()


def test_worker_warns_it_is_reachable(hosts_cluster):
    _, ws = hosts_cluster
    for w in ws:
        log = w.log_text()
        assert f"WARNING: this worker listens on {w.endpoint}" in log and "ssh -N -L" in log, log


@pytest.mark.parametrize("model,layers", [(MODEL, 20), ("gemma3", 12)])
def test_split_across_hosts_generates_the_local_tokens(hosts_cluster, hosts, model, layers):
    s, ws = hosts_cluster
    local = generate(s, model, PROMPT, num_gpu=0)
    unload(s, model)
    before = [_bytes(h) for h in hosts]
    split = generate(s, model, PROMPT, num_gpu=layers, tensor_split="1,1")
    (m,) = s.ps()
    assert {d["name"] for d in m["devices"]} == {"CPU", *(f"RPC[{w.endpoint}]" for w in ws)}
    assert split["context"] == local["context"], (local["response"], split["response"])
    # the weights and every step's activations crossed the veth links
    sent = [_bytes(h) - b for h, b in zip(hosts, before)]
    assert all(n > 10 << 20 for n in sent), sent


def test_host_killed_mid_stream(hosts_cluster):
    s, (a, b) = hosts_cluster
    _, last = stream_until_killed(s, a)
    assert f"RPC worker {a.endpoint}" in last.get("error", ""), last
    assert last["_after_kill_s"] < 20, last
    out = generate(s, MODEL, "Hello", n=8)
    assert out["eval_count"] == 8
    (m,) = s.ps()
    assert f"RPC[{a.endpoint}]" not in {d["name"] for d in m["devices"]}
