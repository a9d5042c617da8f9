"""ModelStatistics with Triton's semantics, checked two ways against the real binary:

- field by field with grpcio after a known sequence of calls (hits, misses, table lookups,
  batches of known sizes, failures);
- with Triton's own perf_analyzer (tritonclient 2.50.0 wheel, installed by scripts/setup-venv.sh),
  which reads ModelStatistics before and after each measurement and attributes the server side
  of the latency from it, on a cached, a static-table and a batched (dynamic) model.

The repository holds copies of the example models:

  ad_static   examples/repository/ad_conversion_onehot, serving_mode static
  bc_cached   examples/repository/breast_cancer_logreg, serving_mode cached
  bc_dynamic  examples/repository/breast_cancer_logreg, serving_mode dynamic
"""
from __future__ import annotations

import glob
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
from oip import expect_code, make_request, pb

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
MODELS = {
    "ad_static": ("ad_conversion_onehot", {"serving_mode": "static"}),
    "bc_cached": ("breast_cancer_logreg", {"serving_mode": "cached", "response_cache": {"max_bytes": 1 << 20}}),
    "bc_dynamic": ("breast_cancer_logreg", {"serving_mode": "dynamic",
                                            "dynamic_batching": {"max_queue_delay_us": 2000, "max_queue_size": 1024}}),
}
PERF_ANALYZER_TIMEOUT = 180  # seconds, per run; the runs below take a few seconds each


@pytest.fixture(scope="module")
def stats_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("statistics")
    srv = oip.example_server(base, MODELS)
    running = getattr(sys.modules.get("conftest"), "_RUNNING", [])
    running.append(srv)  # so that a failure report carries the log tail
    try:
        srv.start(wait_for=list(MODELS))
        yield srv
    finally:
        srv.stop()
        if srv in running:
            running.remove(srv)


def model_stats(stub, name: str) -> pb.ModelStatistics:
    resp = stub.ModelStatistics(pb.ModelStatisticsRequest(name=name), timeout=TIMEOUT)
    assert len(resp.model_stats) == 1, resp
    return resp.model_stats[0]


def check_invariants(s: pb.ModelStatistics) -> None:
    i = s.inference_stats
    assert s.execution_count == sum(b.compute_infer.count for b in s.batch_stats), s
    assert s.inference_count == sum(b.batch_size * b.compute_infer.count for b in s.batch_stats), s
    assert i.compute_input.count == i.compute_infer.count == i.compute_output.count, s
    assert i.queue.count == i.success.count, "every successful request, hits included, counts in queue"
    assert i.compute_infer.count + i.cache_hit.count == i.success.count, "a success is computed or a hit"


def bc_rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 20, (n, 30)).astype(np.float32)


def ad_request(rows: list[list[str]]) -> pb.ModelInferRequest:
    """A typed BYTES [n, 3] request for ad_static."""
    req = pb.ModelInferRequest(model_name="ad_static")
    t = req.inputs.add(name="input", datatype="BYTES", shape=[len(rows), 3])
    t.contents.bytes_contents.extend(v.encode() for row in rows for v in row)
    return req


# --------------------------------------------------------------------------
# field by field


def test_statistics_after_known_sequence(stats_server):
    stub = stats_server.stub()
    started_ms = int(time.time() * 1000)

    # batcher: one call at a time, so each is one execution of its rows; then a refused call
    for n, seed in [(3, 1), (3, 2), (5, 3)]:
        stub.ModelInfer(make_request("bc_dynamic", {"input": bc_rows(n, seed)}), timeout=TIMEOUT)
    expect_code(grpc.StatusCode.INVALID_ARGUMENT, stub.ModelInfer,
                make_request("bc_dynamic", {"input": np.zeros((1, 29), np.float32)}), timeout=TIMEOUT)
    d = model_stats(stub, "bc_dynamic")
    i = d.inference_stats
    assert (i.success.count, i.fail.count, i.queue.count) == (3, 1, 3)
    assert (i.compute_input.count, i.compute_infer.count, i.compute_output.count) == (3, 3, 3)
    assert (d.execution_count, d.inference_count) == (3, 11)
    assert [(b.batch_size, b.compute_infer.count) for b in d.batch_stats] == [(3, 2), (5, 1)]
    assert (i.cache_hit.count, i.cache_miss.count) == (0, 0)
    # The server stamps it from CLOCK_REALTIME_COARSE (a few ms behind the exact clock): 50 ms slack.
    assert started_ms - 50 <= d.last_inference <= int(time.time() * 1000) + 1000
    check_invariants(d)

    # response cache: A misses then hits twice, B misses then hits once
    a, b = bc_rows(2, 10), bc_rows(4, 11)
    for x in [a, a, a, b, b]:
        stub.ModelInfer(make_request("bc_cached", {"input": x}), timeout=TIMEOUT)
    c = model_stats(stub, "bc_cached")
    i = c.inference_stats
    assert (i.success.count, i.queue.count) == (5, 5), "success and queue include cache hits"
    assert (i.cache_hit.count, i.cache_miss.count) == (3, 2)
    assert i.cache_hit.ns > 0 and i.cache_miss.ns > 0
    assert i.compute_infer.count == 2, "cache hits are not computed"
    assert (c.execution_count, c.inference_count) == (2, 6), "inference_count leaves cache hits out"
    check_invariants(c)

    # static table: lookups are executions of their rows whose compute_infer is the lookup
    one = ad_request([["mobile", "us", "tech"]])
    two = ad_request([["desktop", "de", "food"], ["tablet", "jp", "games"]])
    for req in [one, one, two]:
        stub.ModelInfer(req, timeout=TIMEOUT)
    t = model_stats(stub, "ad_static")
    i = t.inference_stats
    assert (i.success.count, i.queue.count, i.compute_infer.count) == (3, 3, 3)
    assert (i.cache_hit.count, i.cache_miss.count) == (0, 0), "a table lookup is no cache hit"
    assert (t.execution_count, t.inference_count) == (3, 4)
    assert [(b.batch_size, b.compute_infer.count) for b in t.batch_stats] == [(1, 2), (2, 1)]
    check_invariants(t)

    # ModelConfig tells perf_analyzer which models have a response cache
    def cache_enabled(name):
        cfg = stub.ModelConfig(pb.ModelConfigRequest(name=name), timeout=TIMEOUT).config
        return cfg.HasField("response_cache") and cfg.response_cache.enable
    assert cache_enabled("bc_cached")
    assert not cache_enabled("bc_dynamic") and not cache_enabled("ad_static")


# --------------------------------------------------------------------------
# perf_analyzer


def perf_analyzer() -> tuple[str, dict]:
    """The perf_analyzer binary in this venv and the environment it runs in (libcudart from
    nvidia-cuda-runtime-cu12 on LD_LIBRARY_PATH; libb64 comes from apt)."""
    exe = Path(sys.executable).parent / "perf_analyzer"
    libs = glob.glob(str(Path(sys.prefix) / "lib" / "python*" / "site-packages" / "nvidia" / "cuda_runtime" / "lib"))
    if not exe.exists() or not libs:
        pytest.skip("perf_analyzer is not installed in this venv: run scripts/setup-venv.sh (make venv)")
    import os
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = ":".join([libs[0]] + ([env["LD_LIBRARY_PATH"]] if env.get("LD_LIBRARY_PATH") else []))
    return str(exe), env


def run_perf_analyzer(server, model: str, tmp_path: Path, extra: list[str] = ()) -> tuple[str, str]:
    exe, env = perf_analyzer()
    argv = [exe, "-i", "grpc", "-u", server.address, "-m", model,
            "--measurement-mode", "count_windows", "--measurement-request-count", "100",
            "--concurrency-range", "1:2", "--stability-percentage", "999", "--max-trials", "5",
            "-f", str(tmp_path / f"{model}.csv"), *extra]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=PERF_ANALYZER_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"perf_analyzer on {model} did not finish in {PERF_ANALYZER_TIMEOUT} s")
    assert proc.returncode == 0, f"perf_analyzer on {model} exited {proc.returncode}\n{out}\n{err}"
    assert "failed" not in (out + err).lower(), f"{out}\n{err}"
    return out, err


def server_sections(out: str) -> list[dict[str, int]]:
    """The integer figures of each "Server:" block (one per concurrency), by their label."""
    sections = []
    for block in out.split("  Server: \n")[1:]:
        figures = {}
        for line in block.splitlines():
            m = re.match(r"\s+([A-Za-z ]+): (\d+)$", line)
            if m:
                figures[m.group(1)] = int(m.group(2))
            elif line and not line.startswith(" "):
                break
        sections.append(figures)
    return sections


def test_perf_analyzer_on_cached_model(stats_server, tmp_path):
    # perf_analyzer sends the same random tensor every time: one miss, then hits.
    out, err = run_perf_analyzer(stats_server, "bc_cached", tmp_path)
    sections = server_sections(out)
    assert len(sections) == 2, out
    for concurrency, s in enumerate(sections, start=1):
        assert s["Successful request count"] > 0, out
        assert s["Cache hit count"] > 0, f"no cache hits reported\n{out}"
        # Up to c - 1 requests answered in the later snapshot may have been served before the
        # earlier one (see test_perf_analyzer_on_dynamic_model).
        assert s["Cache hit count"] + s["Inference count"] >= s["Successful request count"] - (concurrency - 1), out
    assert "Average Cache Hit Latency" in out, out


def test_perf_analyzer_on_static_table_model(stats_server, tmp_path):
    data = tmp_path / "ad.json"
    data.write_text(json.dumps({"data": [{"input": ["mobile", "us", "tech"]}, {"input": ["tablet", "fr", "food"]}]}))
    before = model_stats(stats_server.stub(), "ad_static")
    out, err = run_perf_analyzer(stats_server, "ad_static", tmp_path, ["--input-data", str(data)])
    sections = server_sections(out)
    assert len(sections) == 2, out
    for concurrency, s in enumerate(sections, start=1):
        assert s["Inference count"] > 0 and s["Inference count"] == s["Execution count"], out
        # As on the dynamic model: a lookup counted before its answer may sit in either snapshot.
        assert abs(s["Successful request count"] - s["Inference count"]) <= concurrency - 1, out
        assert "Cache hit count" not in s, "no response cache on a static model"
    assert "cache hit/miss latency is non-zero" not in err, err
    after = model_stats(stats_server.stub(), "ad_static")
    assert after.inference_stats.cache_hit.count == before.inference_stats.cache_hit.count == 0
    assert after.inference_stats.success.count > before.inference_stats.success.count
    assert after.inference_stats.fail.count == before.inference_stats.fail.count, "every lookup in the domain"


def test_perf_analyzer_on_dynamic_model(stats_server, tmp_path):
    out, err = run_perf_analyzer(stats_server, "bc_dynamic", tmp_path)
    sections = server_sections(out)
    assert len(sections) == 2, out
    for concurrency, s in enumerate(sections, start=1):
        # perf_analyzer reports the difference of two snapshots taken while its other calls run:
        # a request whose execution is counted and whose answer is not yet (the server counts
        # success as it answers) may sit in either snapshot, so with c calls in flight the two
        # counts may differ by up to c - 1 (at concurrency 1 they are equal).
        assert s["Successful request count"] > 0, out
        assert abs(s["Inference count"] - s["Successful request count"]) <= concurrency - 1, out
        assert 0 < s["Execution count"] <= s["Inference count"], out
    check_invariants(model_stats(stats_server.stub(), "bc_dynamic"))
