"""The CPU container image, built and run for real with podman: build it from this checkout
(container/build.sh), start it with a models volume, import SmolLM2 through the API, chat, restart the
container and find the model still there, use the CLI through ``podman exec``, run the health check,
stop and remove everything.

Opt-in (``PYOLLAMA_CONTAINER_TEST=1``, marker ``container``): the build compiles llama.cpp inside the
image, minutes on a small machine (PYOLLAMA_CPU_VARIANTS=native, the default here, keeps it to one CPU
variant; =all builds the release image, and PYOLLAMA_CPU_VARIANT is passed into the container). The
figures (build time, image size, first token) are printed with ``-s``."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.llama_server import free_port

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.container, pytest.mark.model, pytest.mark.slow]

if os.environ.get("PYOLLAMA_CONTAINER_TEST") != "1":
    pytest.skip("set PYOLLAMA_CONTAINER_TEST=1 to build and run the container image", allow_module_level=True)
if shutil.which("podman") is None:
    pytest.skip("podman is not installed (apt-get install podman runc)", allow_module_level=True)

ENV = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(REPO / "container" / "containers.conf"))}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(["podman", *args], env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return r


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/", timeout=2).text == "Ollama is running":
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the container's server did not answer at {url}")


@pytest.fixture(scope="module")
def image() -> str:
    tag = "localhost/pyollama:cpu-test"
    t0 = time.monotonic()
    env = {**ENV, "PYOLLAMA_CPU_VARIANTS": os.environ.get("PYOLLAMA_CPU_VARIANTS", "native")}
    r = subprocess.run(["bash", "container/build.sh", tag], cwd=REPO, env=env, capture_output=True, text=True,
                       timeout=3600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    size = json.loads(podman("image", "inspect", tag).stdout)[0]["Size"]
    print(f"\nimage build: {time.monotonic() - t0:.0f} s, size {size / 2**20:.0f} MiB")
    return tag


def test_image_runs_keeps_models_and_answers(image, smollm2_path):
    name, volume, port = f"pyollama-test-{uuid.uuid4().hex[:8]}", f"pyollama-test-{uuid.uuid4().hex[:8]}", free_port()
    url = f"http://127.0.0.1:{port}"
    # The image listens on 0.0.0.0:11434 inside; the host network stands in for -p where the sandbox
    # has no bridge, so the port is moved with PYOLLAMA_HOST.
    pinned = ["-e", f"PYOLLAMA_CPU_VARIANT={os.environ['PYOLLAMA_CPU_VARIANT']}"] \
        if os.environ.get("PYOLLAMA_CPU_VARIANT") else []
    podman("run", "-d", "--name", name, "--network", "host", "-e", f"PYOLLAMA_HOST=127.0.0.1:{port}", *pinned,
           "-v", f"{volume}:/root/.ollama", image)
    try:
        wait_up(url)
        user = podman("exec", name, "id", "-u").stdout.strip()
        assert user != "0", "the server runs as root"
        data = smollm2_path.read_bytes()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert httpx.post(f"{url}/api/blobs/{digest}", content=data, timeout=120).status_code in (200, 201)
        r = httpx.post(f"{url}/api/create", json={"model": "smollm2:135m", "files": {"m.gguf": digest},
                                                  "stream": False}, timeout=300)
        assert r.status_code == 200, r.text
        chat = {"model": "smollm2:135m", "stream": False, "options": {"temperature": 0, "num_predict": 16},
                "messages": [{"role": "user", "content": "What is the capital of France? Answer in one word."}]}
        t0 = time.monotonic()
        first = httpx.post(f"{url}/api/chat", json=chat, timeout=300).json()
        print(f"first answer (load included): {time.monotonic() - t0:.2f} s, "
              f"load {first['load_duration'] / 1e9:.2f} s, {first['message']['content']!r}")
        assert "Paris" in first["message"]["content"]
        podman("restart", name)
        wait_up(url)
        assert "smollm2:135m" in [m["name"] for m in httpx.get(f"{url}/api/tags").json()["models"]]
        again = httpx.post(f"{url}/api/chat", json=chat, timeout=300).json()
        assert again["message"]["content"] == first["message"]["content"]
        listing = podman("exec", name, "pyollama", "list").stdout
        assert "smollm2:135m" in listing
        health = podman("healthcheck", "run", name, check=False)
        assert health.returncode == 0, health.stdout + health.stderr
    finally:
        podman("rm", "-f", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)
