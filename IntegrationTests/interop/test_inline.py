"""Inline execution (config.json "execution"): a computed request may run on the event loop that
received it instead of a worker thread. The answers must be the very bytes the workers give, the
measured policy must pick inline for a cheap model and the workers for a costly request, and
statistics must count inline executions as they count the workers'."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

import oip
from oip import make_request, metric_sum, parse_metrics

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "repository"


def install(repo: Path, name: str, source: str, config: dict) -> None:
    (repo / name / "1").mkdir(parents=True)
    shutil.copy(EXAMPLES / source / "1" / "model.onnx", repo / name / "1" / "model.onnx")
    (repo / name / "config.json").write_text(json.dumps(config))


@pytest.fixture(scope="module")
def inline_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("inline")
    repo = base / "repository"
    dyn = {"serving_mode": "dynamic"}
    install(repo, "lr_inline", "breast_cancer_logreg", {**dyn, "execution": "inline"})
    install(repo, "lr_workers", "breast_cancer_logreg", {**dyn, "execution": "workers"})
    install(repo, "lr_auto", "breast_cancer_logreg", {**dyn, "execution": "auto"})
    install(repo, "mlp_auto", "digits_mlp", {**dyn, "execution": "auto"})
    srv = oip.Server(repo, base / "swerve.log")
    srv.start()
    yield srv
    srv.stop()


def inline_count(srv, model: str) -> float:
    return metric_sum(parse_metrics(srv.metrics()), "swerve_inline_executions_total", model=model)


def raw_outputs(stub, model: str, x: np.ndarray) -> list[bytes]:
    resp = stub.ModelInfer(make_request(model, {"input": x}, raw=True), timeout=20)
    return list(resp.raw_output_contents)


def test_inline_answers_are_the_workers_bytes(inline_server):
    stub = inline_server.stub(inline_server.channel())
    rng = np.random.default_rng(3)
    for rows in (1, 2, 7, 64):
        x = rng.standard_normal((rows, 30)).astype(np.float32) * 100
        assert raw_outputs(stub, "lr_inline", x) == raw_outputs(stub, "lr_workers", x), rows
    want = oip.ort_run(EXAMPLES / "breast_cancer_logreg" / "1" / "model.onnx", {"input": x})
    oip.assert_matches(oip.infer(stub, "lr_inline", {"input": x}), want, exact=["label"])
    assert inline_count(inline_server, "lr_inline") >= 4
    assert inline_count(inline_server, "lr_workers") == 0


def test_auto_goes_inline_for_a_cheap_model(inline_server):
    stub = inline_server.stub(inline_server.channel())
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 30)).astype(np.float32)
    # Sequential one-row requests: each finds the batcher idle, so both the hop and the cost are
    # measured; a logistic regression row (well under a microsecond) is far cheaper than the hop.
    deadline = time.monotonic() + 60
    n = 0
    while inline_count(inline_server, "lr_auto") == 0 and time.monotonic() < deadline and n < 5000:
        for _ in range(100):
            stub.ModelInfer(make_request("lr_auto", {"input": x}), timeout=20)
        n += 100
    assert inline_count(inline_server, "lr_auto") > 0, f"no inline execution after {n} cheap requests"
    # Overlapping requests are never inline (they go to the workers, which batch them).
    log = inline_server.log_path.read_text(errors="replace")
    assert "computing on the event loops" in log and "lr_auto:1" in log, log[-2000:]


def test_inline_keeps_statistics(inline_server):
    stub = inline_server.stub(inline_server.channel())
    x = np.zeros((3, 30), dtype=np.float32)
    before = stub.ModelStatistics(oip.pb.ModelStatisticsRequest(name="lr_inline"), timeout=10).model_stats[0]
    for _ in range(10):
        stub.ModelInfer(make_request("lr_inline", {"input": x}), timeout=20)
    after = stub.ModelStatistics(oip.pb.ModelStatisticsRequest(name="lr_inline"), timeout=10).model_stats[0]
    assert after.inference_count - before.inference_count == 30
    assert after.execution_count - before.execution_count == 10
    s0, s1 = before.inference_stats, after.inference_stats
    assert s1.success.count - s0.success.count == 10
    assert s1.compute_infer.count - s0.compute_infer.count == 10


def test_unknown_execution_value_fails_the_load(tmp_path):
    repo = tmp_path / "repository"
    install(repo, "bad", "breast_cancer_logreg", {"execution": "sometimes"})
    srv = oip.Server(repo, tmp_path / "swerve.log")
    srv.start(require_server_ready=False)
    try:
        deadline = time.monotonic() + 30
        while "execution must be one of" not in srv.log_path.read_text(errors="replace") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "execution must be one of auto, inline, workers" in srv.log_path.read_text(errors="replace")
    finally:
        srv.stop()
