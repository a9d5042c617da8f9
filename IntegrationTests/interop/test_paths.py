"""Serving paths (static table, response cache with coalescing, batcher, auto) against one
server whose repository holds copies of the example models under every `serving_mode`:

  ad_{static,cached,dynamic,auto}   examples/repository/ad_conversion_onehot (BYTES [-1, 3])
  bc_{cached,dynamic,auto}          examples/repository/breast_cancer_logreg (FP32 [-1, 30])

(breast_cancer_logreg has no finite domain, so it cannot be `static`.) bc_cached gets a small
cache budget so that a Zipf stream over a few thousand inputs both hits and evicts.

The swerve.v1 PathStatistics stubs are generated here from protos/swerve_serving.proto into a
temporary folder (conftest generates only the KServe and health stubs).
"""
from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest

import oip
from oip import decode_response, expect_code, make_request, metric_sum, parse_metrics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "repository"
AD = "ad_conversion_onehot"
BC = "breast_cancer_logreg"
AD_ONNX = EXAMPLES / AD / "1" / "model.onnx"
BC_ONNX = EXAMPLES / BC / "1" / "model.onnx"
AD_DOMAIN = json.loads((EXAMPLES / AD / "1" / "metadata.json").read_text())["domain"]
AD_COLUMNS = [AD_DOMAIN["device"], AD_DOMAIN["country"], AD_DOMAIN["ad_category"]]
AD_CELLS = int(np.prod([len(c) for c in AD_COLUMNS]))
BC_CACHE_BYTES = 256 * 1024  # one shard of ~500 entries of ~520 bytes
PATH_STATISTICS = "/swerve.v1.ServingInsights/PathStatistics"
TIMEOUT = 30.0

MODELS = {
    "ad_static": (AD, {"serving_mode": "static"}),
    "ad_cached": (AD, {"serving_mode": "cached"}),
    "ad_dynamic": (AD, {"serving_mode": "dynamic"}),
    "ad_auto": (AD, {"serving_mode": "auto"}),
    "bc_cached": (BC, {"serving_mode": "cached", "response_cache": {"max_bytes": BC_CACHE_BYTES}}),
    "bc_dynamic": (BC, {"serving_mode": "dynamic"}),
    "bc_auto": (BC, {"serving_mode": "auto", "response_cache": {"max_bytes": 4 << 20}}),
    # auto with the server's per-model share as its budget (loads after the ad_* copies)
    "bc_auto_shared": (BC, {"serving_mode": "auto"}),
}


# --------------------------------------------------------------------------
# stubs for swerve.v1 (generated into a temporary folder)


@pytest.fixture(scope="module")
def serving_pb2():
    out = Path(tempfile.mkdtemp(prefix="swerve_serving_stubs_"))
    try:
        cmd = [sys.executable, "-m", "grpc_tools.protoc", "-I", str(ROOT / "protos"),
               f"--python_out={out}", f"--grpc_python_out={out}", str(ROOT / "protos" / "swerve_serving.proto")]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stderr}"
        sys.path.insert(0, str(out))
        try:
            module = importlib.import_module("swerve_serving_pb2")
        finally:
            sys.path.remove(str(out))
        yield module
    finally:
        shutil.rmtree(out, ignore_errors=True)


# --------------------------------------------------------------------------
# the server


@pytest.fixture(scope="module")
def paths_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("paths")
    repo = base / "repository"
    repo.mkdir()
    for name, (source, overrides) in MODELS.items():
        shutil.copytree(EXAMPLES / source, repo / name)
        config_path = repo / name / "config.json"
        config = json.loads(config_path.read_text())
        config.update(overrides)
        config_path.write_text(json.dumps(config, indent=2))
    srv = oip.Server(repo, base / "swerve.log")
    running = _conftest_running()
    running.append(srv)  # so that a failure report carries the log tail
    try:
        srv.start(wait_for=list(MODELS))
        yield srv
    finally:
        srv.stop()
        running.remove(srv)


def _conftest_running() -> list:
    conftest = sys.modules.get("conftest")
    return getattr(conftest, "_RUNNING", []) if conftest is not None else []


@pytest.fixture(scope="module")
def pstub(paths_server):
    return paths_server.stub()


@pytest.fixture(scope="module")
def path_stats(paths_server, serving_pb2):
    """path_stats(name="", version="") -> {model name: VersionPathStatistics} (raises RpcError)."""
    channel = paths_server.channel()
    call = channel.unary_unary(PATH_STATISTICS,
                               request_serializer=serving_pb2.PathStatisticsRequest.SerializeToString,
                               response_deserializer=serving_pb2.PathStatisticsResponse.FromString)

    def fetch(name: str = "", version: str = "") -> dict:
        resp = call(serving_pb2.PathStatisticsRequest(name=name, version=version), timeout=TIMEOUT)
        return {m.name: m for m in resp.models}

    return fetch


# --------------------------------------------------------------------------
# inputs and references


def bc_pool(n: int, seed: int = 7) -> np.ndarray:
    """n distinct breast-cancer-like rows: real rows from scikit-learn, jittered per row."""
    from sklearn.datasets import load_breast_cancer
    data = load_breast_cancer().data.astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = data[rng.integers(0, len(data), n)]
    return (rows * rng.uniform(0.9, 1.1, rows.shape)).astype(np.float32)


def zipf_ranks(n_items: int, count: int, s: float, seed: int) -> np.ndarray:
    """`count` ranks in 0..<n_items, P(r) ~ 1 / (r + 1)^s."""
    p = 1.0 / np.arange(1, n_items + 1) ** s
    return np.random.default_rng(seed).choice(n_items, size=count, p=p / p.sum())


def ad_rows(count: int, seed: int, unseen_share: float = 0.2) -> np.ndarray:
    """Random category rows; about `unseen_share` of the cells are values the model never saw."""
    rng = np.random.default_rng(seed)
    unseen = ["zz", "", "MOBILE", "us ", "unknown-category", "ünïcode"]
    rows = []
    for _ in range(count):
        row = []
        for column in AD_COLUMNS:
            if rng.random() < unseen_share:
                row.append(unseen[rng.integers(len(unseen))])
            else:
                row.append(column[rng.integers(len(column))])
        rows.append(row)
    return np.array(rows, dtype=object)


def bytes_request(model: str, rows: np.ndarray):
    """A raw BYTES [-1, 3] request (4-byte little-endian length before each element)."""
    req = oip.pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="BYTES", shape=list(rows.shape))
    raw = bytearray()
    for value in rows.ravel():
        b = value.encode()
        raw += len(b).to_bytes(4, "little") + b
    req.raw_input_contents.append(bytes(raw))
    return req


def raw_answer(resp) -> tuple:
    """Everything an answer says, as bytes: output names, datatypes, shapes, raw contents."""
    return tuple((o.name, o.datatype, tuple(o.shape)) for o in resp.outputs) + tuple(resp.raw_output_contents)


# --------------------------------------------------------------------------
# (i) concurrent hits and misses in `cached` mode: no cross-talk


def test_cached_concurrent_zipf_answers_match_onnxruntime(paths_server, path_stats):
    """8 channels x 32 requests in flight, Zipf(1.1) over 3000 distinct inputs (plus 2-row requests)
    against a cache of ~500 entries: hits, misses, evictions and coalesced waiters all happen at
    once, and every answer must be onnxruntime's for its own input."""
    pool = bc_pool(3000)
    want = oip.ort_run(BC_ONNX, {"input": pool})
    channels, per_channel, in_flight = 8, 320, 32
    ranks = zipf_ranks(len(pool), channels * per_channel * 2, 1.1, seed=11).reshape(channels, per_channel, 2)
    # every 5th request carries two rows (a different key shape for the same rows)
    two_rows = (np.arange(per_channel) % 5) == 4
    before = path_stats("bc_cached")["bc_cached"]

    failures: list[str] = []
    lock = threading.Lock()

    def check(ch_index: int, i: int, resp) -> None:
        idx = list(ranks[ch_index, i]) if two_rows[i] else [ranks[ch_index, i, 0]]
        got = decode_response(resp, raw=True)
        expect = {k: v[idx] for k, v in want.items()}
        try:
            oip.assert_matches(got, expect, context=f"channel {ch_index} request {i} rows {idx}: ")
        except AssertionError as e:
            with lock:
                failures.append(str(e)[:500])

    def run_channel(ch_index: int) -> None:
        channel = grpc.insecure_channel(paths_server.address)
        try:
            stub = oip.pb_grpc.GRPCInferenceServiceStub(channel)
            for start in range(0, per_channel, in_flight):
                futures = []
                for i in range(start, min(start + in_flight, per_channel)):
                    idx = list(ranks[ch_index, i]) if two_rows[i] else [ranks[ch_index, i, 0]]
                    req = make_request("bc_cached", {"input": pool[idx]})
                    futures.append((i, stub.ModelInfer.future(req, timeout=TIMEOUT)))
                for i, f in futures:
                    try:
                        check(ch_index, i, f.result())
                    except grpc.RpcError as e:
                        with lock:
                            failures.append(f"channel {ch_index} request {i}: {e.code().name}: {e.details()}")
        finally:
            channel.close()

    threads = [threading.Thread(target=run_channel, args=(c,)) for c in range(channels)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "some channels did not finish within 240 s"
    assert not failures, f"{len(failures)} wrong or failed answers, first: {failures[:3]}"

    after = path_stats("bc_cached")["bc_cached"]
    hits, misses = after.cache_hits - before.cache_hits, after.cache_misses - before.cache_misses
    total = channels * per_channel
    assert hits + misses == total, f"hits {hits} + misses {misses} != {total} requests"
    assert hits > total // 4, f"only {hits} cache hits of {total} Zipf requests"
    assert misses > 0
    assert after.cache_evictions > before.cache_evictions, "a ~500-entry cache under 3000 inputs never evicted"
    assert after.cache_bytes <= after.cache_capacity_bytes == BC_CACHE_BYTES


# --------------------------------------------------------------------------
# (ii) every path answers byte for byte the same


@pytest.mark.parametrize("batch", [1, 10])
def test_static_cached_dynamic_auto_identical(pstub, path_stats, batch):
    """200 random category rows (about a fifth of the cells unseen) in requests of `batch` rows:
    the static table, the cache (miss, then hit), the batcher and auto give identical bytes."""
    # single rows: a fifth of the cells unseen; batches of 10: few enough that some batches are
    # wholly in the domain (a batch with one unseen row is computed, not looked up)
    rows = ad_rows(200, seed=100 + batch, unseen_share=0.2 if batch == 1 else 0.03)
    before = path_stats()
    fallbacks = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        in_domain = all(v in col for r in chunk for v, col in zip(r, AD_COLUMNS))
        fallbacks += 0 if in_domain else 1
        answers = {}
        for model in ("ad_dynamic", "ad_static", "ad_cached", "ad_auto"):
            answers[model] = raw_answer(pstub.ModelInfer(bytes_request(model, chunk), timeout=TIMEOUT))
        # again: ad_cached from the cache now
        answers["ad_cached (again)"] = raw_answer(pstub.ModelInfer(bytes_request("ad_cached", chunk), timeout=TIMEOUT))
        reference = answers["ad_dynamic"]
        for model, answer in answers.items():
            assert answer == reference, f"rows {chunk.tolist()}: {model} answered {answer} but dynamic {reference}"
        # and the batched core agrees with onnxruntime (unseen categories one-hot to zeros)
        want = oip.ort_run(AD_ONNX, {"input": chunk})
        resp = pstub.ModelInfer(bytes_request("ad_dynamic", chunk), timeout=TIMEOUT)
        oip.assert_matches(decode_response(resp, raw=True), want, context=f"rows {chunk.tolist()}: ")

    after = path_stats()
    requests = len(rows) // batch
    lookups = after["ad_static"].table_lookups - before["ad_static"].table_lookups
    fell_back = after["ad_static"].table_fallbacks - before["ad_static"].table_fallbacks
    assert fell_back == fallbacks, f"static: {fell_back} fallbacks, expected {fallbacks} requests with unseen values"
    assert lookups == requests - fallbacks, f"static: {lookups} table lookups, expected {requests - fallbacks}"
    assert 0 < fallbacks < requests, "the test rows should mix seen and unseen categories"
    hits = after["ad_cached"].cache_hits - before["ad_cached"].cache_hits
    assert hits >= requests, f"ad_cached: {hits} hits after sending each of {requests} requests twice"


# --------------------------------------------------------------------------
# (iii) PathStatistics


def test_path_statistics_reports_modes_and_tables(path_stats, pstub):
    # one request each, so that every version has traffic
    for model in ("ad_static", "ad_cached", "ad_dynamic", "ad_auto"):
        pstub.ModelInfer(bytes_request(model, np.array([["mobile", "us", "tech"]], dtype=object)), timeout=TIMEOUT)
    stats = path_stats()
    assert set(MODELS) <= set(stats), f"PathStatistics lists {sorted(stats)}"
    expected = {  # name: (mode, active path, has a table)
        "ad_static": ("static", "static", True),
        "ad_auto": ("auto", "static", True),
        "ad_cached": ("cached", "cached", False),
        "ad_dynamic": ("dynamic", "dynamic", False),
        "bc_cached": ("cached", "cached", False),
        "bc_dynamic": ("dynamic", "dynamic", False),
    }
    for name, (mode, active, table) in expected.items():
        s = stats[name]
        assert (s.mode, s.active_path) == (mode, active), f"{name}: mode {s.mode}, active path {s.active_path}"
        assert s.version == "1", f"{name}: version {s.version!r}"
        if table:
            assert s.table_cells == AD_CELLS, f"{name}: {s.table_cells} table cells, the domain has {AD_CELLS}"
            assert s.table_bytes > 0 and s.table_build_ms >= 0
        else:
            assert s.table_cells == 0 and s.table_bytes == 0, f"{name}: a table ({s.table_cells} cells) in mode {mode}"
    assert stats["bc_auto"].mode == "auto" and stats["bc_auto"].active_path in ("cached", "dynamic")
    assert stats["bc_cached"].cache_capacity_bytes == BC_CACHE_BYTES
    assert stats["bc_dynamic"].cache_capacity_bytes == 0
    # one model, one version
    only = path_stats("ad_static", "1")
    assert list(only) == ["ad_static"] and only["ad_static"].table_cells == AD_CELLS


def test_path_statistics_cache_hits_grow(path_stats, pstub):
    x = bc_pool(1, seed=12345)
    before = path_stats("bc_cached")["bc_cached"]
    for _ in range(3):
        oip.infer(pstub, "bc_cached", {"input": x})
    after = path_stats("bc_cached")["bc_cached"]
    assert after.cache_misses - before.cache_misses == 1, "the first of three identical requests misses"
    assert after.cache_hits - before.cache_hits == 2, "the next two hit"
    assert after.cache_entries >= 1 and 0 < after.cache_bytes <= after.cache_capacity_bytes
    # dynamic never touches a cache
    d0 = path_stats("bc_dynamic")["bc_dynamic"]
    for _ in range(2):
        oip.infer(pstub, "bc_dynamic", {"input": x})
    d1 = path_stats("bc_dynamic")["bc_dynamic"]
    assert d1.batcher_requests - d0.batcher_requests == 2
    assert (d1.cache_hits, d1.cache_misses) == (d0.cache_hits, d0.cache_misses) == (0, 0)


@pytest.mark.parametrize("raw", [True, False])
def test_cache_hits_answer_with_the_same_bytes_as_computing(pstub, path_stats, raw):
    """A hit is answered from the encoding the cache stored on the first hit: with and without a
    request id, typed and raw, it must be the very response the dynamic path computes, id echoed."""
    x = bc_pool(1, seed=4242 + raw)
    before = path_stats("bc_cached")["bc_cached"]
    for rid in ("", "req-7", "", "another-id-of-some-length", ""):
        reference = oip.make_request("bc_dynamic", {"input": x}, raw=raw)
        reference.id = rid
        want = pstub.ModelInfer(reference, timeout=TIMEOUT)
        for attempt in range(3):  # miss (first time only), first hit (encodes), later hits (stored bytes)
            req = oip.make_request("bc_cached", {"input": x}, raw=raw)
            req.id = rid
            got = pstub.ModelInfer(req, timeout=TIMEOUT)
            assert got.id == rid, f"id {rid!r} came back as {got.id!r}"
            assert (got.model_name, got.model_version) == ("bc_cached", "1")
            got.model_name = want.model_name  # the one field that differs by design
            assert got == want, f"id {rid!r}, attempt {attempt}: cached answer differs from computed"
            decode_response(got, raw=raw)
    after = path_stats("bc_cached")["bc_cached"]
    assert after.cache_misses - before.cache_misses == 1 and after.cache_hits - before.cache_hits == 14
    assert 0 < after.cache_bytes <= after.cache_capacity_bytes


def test_path_statistics_unknown_model(paths_server, serving_pb2):
    call = paths_server.channel().unary_unary(
        PATH_STATISTICS, request_serializer=serving_pb2.PathStatisticsRequest.SerializeToString,
        response_deserializer=serving_pb2.PathStatisticsResponse.FromString)
    expect_code(grpc.StatusCode.NOT_FOUND, call, serving_pb2.PathStatisticsRequest(name="no_such_model"), timeout=TIMEOUT)


def test_auto_turns_the_cache_on_for_peaked_traffic(paths_server, path_stats):
    """auto mode: a window (4,096 sampled requests, one in four, so 16,384 requests) concentrated
    on 5 inputs switches the cache on."""
    pool = bc_pool(5, seed=99)
    before = path_stats("bc_auto")["bc_auto"]
    requests = [make_request("bc_auto", {"input": pool[i % len(pool)][None]}) for i in range(17_000)]
    errors: list[str] = []

    def run(part: list) -> None:
        channel = grpc.insecure_channel(paths_server.address)
        try:
            stub = oip.pb_grpc.GRPCInferenceServiceStub(channel)
            for start in range(0, len(part), 64):
                futures = [stub.ModelInfer.future(r, timeout=TIMEOUT) for r in part[start:start + 64]]
                for f in futures:
                    try:
                        f.result()
                    except grpc.RpcError as e:
                        errors.append(f"{e.code().name}: {e.details()}")
        finally:
            channel.close()

    threads = [threading.Thread(target=run, args=(requests[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert not any(t.is_alive() for t in threads), "peaked traffic did not finish within 240 s"
    assert not errors, errors[:3]
    after = path_stats("bc_auto")["bc_auto"]
    assert after.active_path == "cached", (
        f"auto stayed {after.active_path} (peakedness {after.peakedness:.3f}, cardinality {after.cardinality:.0f})")
    assert after.path_switches > before.path_switches
    assert after.peakedness >= 0.3 and after.cardinality < 50


def test_auto_without_explicit_budget_gets_a_cache(path_stats):
    """Versions that cannot use a cache (static, dynamic, auto with a table) take no budget,
    so an auto model loaded after them still gets its share."""
    stats = path_stats("bc_auto_shared")
    assert stats["bc_auto_shared"].cache_capacity_bytes > 0, (
        "bc_auto_shared (auto, no response_cache in config.json) got no cache budget")


# --------------------------------------------------------------------------
# (iv) metrics


PATH_METRICS = ["swerve_cache_hits_total", "swerve_cache_misses_total", "swerve_cache_evictions_total",
                "swerve_cache_bytes", "swerve_cache_enabled", "swerve_coalesced_requests_total",
                "swerve_static_table_lookups_total", "swerve_path_switches_total"]


def test_metrics_page_has_path_metrics(paths_server, pstub):
    pstub.ModelInfer(bytes_request("ad_static", np.array([["tablet", "jp", "food"]], dtype=object)), timeout=TIMEOUT)
    x = bc_pool(1, seed=4242)
    for _ in range(2):
        oip.infer(pstub, "bc_cached", {"input": x})
    samples = parse_metrics(paths_server.metrics())
    names = {n for n, _, _ in samples}
    missing = [m for m in PATH_METRICS if m not in names]
    assert not missing, f"metric families missing: {missing}"
    assert metric_sum(samples, "swerve_static_table_lookups_total", model="ad_static") >= 1
    assert metric_sum(samples, "swerve_cache_hits_total", model="bc_cached") >= 1
    assert metric_sum(samples, "swerve_cache_misses_total", model="bc_cached") >= 1
    assert metric_sum(samples, "swerve_cache_enabled", model="bc_cached") == 1
    assert metric_sum(samples, "swerve_cache_enabled", model="bc_dynamic") == 0
    assert metric_sum(samples, "swerve_cache_bytes", model="bc_cached") > 0
