"""GET /metrics: scraped from a real server after real traffic, parsed with Prometheus' own text parser,
and every figure checked against what the API answered."""
from __future__ import annotations

import io
import json

from prometheus_client.openmetrics.parser import text_fd_to_metric_families
from prometheus_client.parser import text_string_to_metric_families

LONG = " ".join(f"line {i}: the quick brown fox jumps over the lazy dog." for i in range(12))


def _scrape(server, **kw) -> dict[tuple[str, tuple], float]:
    r = server.get("/metrics", **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=")
    out = {}
    for fam in text_string_to_metric_families(r.text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _generate(server, prompt: str, n: int = 12) -> dict:
    r = server.post("/api/generate", json={"model": "tiny", "prompt": prompt, "raw": True, "stream": True,
                                           "options": {"temperature": 0, "num_predict": n, "num_ctx": 512}})
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()][-1]


def test_metrics_after_traffic(serve):
    s = serve(PYOLLAMA_NUM_PARALLEL="1")
    finals = [_generate(s, "A " + LONG), _generate(s, "B " + LONG[::-1]), _generate(s, "A " + LONG + " more")]
    assert s.get("/api/nothing-here").status_code == 404
    m = _scrape(s)
    model = (("model", "tiny:latest"),)
    ok = (("method", "POST"), ("route", "/api/generate"), ("status", "200"))
    assert m[("pyollama_http_requests_total", ok)] == 3
    assert m[("pyollama_http_requests_total", (("method", "GET"), ("route", "other"), ("status", "404")))] == 1
    assert m[("pyollama_prompt_tokens_total", model)] == sum(f["prompt_eval_count"] for f in finals)
    assert m[("pyollama_generated_tokens_total", model)] == sum(f["eval_count"] for f in finals)
    assert m[("pyollama_time_to_first_token_seconds_count", model)] == 3
    assert m[("pyollama_inter_token_latency_seconds_count", model)] > 0
    assert m[("pyollama_models_loaded", ())] == 1 and m[("pyollama_model_loads_total", ())] == 1
    assert m[("pyollama_queue_depth", ())] == 0
    assert m[("pyollama_slots", model)] == 1 and m[("pyollama_slots_busy", model)] == 0
    assert m[("pyollama_kv_cells", model)] == 512 and 0 < m[("pyollama_kv_cells_used", model)] <= 512
    # the third prompt continues the first, which the second pushed out of the only slot: restored from RAM
    assert m[("pyollama_prompt_cache_hits_total", model)] == 1
    assert m[("pyollama_prompt_cache_saves_total", model)] == 2
    assert m[("pyollama_prompt_cache_bytes", model)] > 0
    assert m[("pyollama_prompt_cached_tokens_total", model)] >= finals[0]["prompt_eval_count"]
    assert s.post("/api/generate", json={"model": "tiny", "keep_alive": 0}).status_code == 200
    assert _scrape(s)[("pyollama_model_unloads_total", ())] == 1


def test_metrics_behind_the_api_key_and_switchable(serve):
    s = serve(PYOLLAMA_API_KEY="sekrit")
    assert s.get("/metrics").status_code == 401
    assert _scrape(s, headers={"Authorization": "Bearer sekrit"})[("pyollama_models_loaded", ())] == 0
    r = s.get("/metrics", headers={"Authorization": "Bearer sekrit", "Accept": "application/openmetrics-text"})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    names = {f.name for f in text_fd_to_metric_families(io.StringIO(r.text))}
    assert {"pyollama_http_requests", "pyollama_models_loaded", "pyollama_model_loads"} <= names
    off = serve(PYOLLAMA_METRICS="0")
    assert off.get("/metrics").status_code == 404
