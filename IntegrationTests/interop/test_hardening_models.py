"""Hostile model files and readiness, against the real `swerve serve` binary.

What the Swift repository tests cannot show: the flags (--max-model-bytes, --strict-readiness,
--model-load-timeout) as a user passes them, the process's peak memory while a model.onnx
linked to /dev/zero is "loaded" (before the fix it was read whole: 15.8 GB, then abort), the
load-failure metric on /metrics, and start-up that ends with a FIFO in the repository.
"""
from __future__ import annotations

import os
import subprocess

import grpc
import pytest

from conftest import _RUNNING
import model_zoo
import oip
from oip import HealthStatus, expect_code, health_pb2, metric_sum, parse_metrics, pb

# Peak RSS allowed for a server holding one small model while refusing the hostile files. A
# debug build serving "dense" peaks far below this; reading /dev/zero up to the 2 GiB bound
# (had the type check been missing) would exceed it.
PEAK_RSS_BOUND = 512 << 20
HOSTILE = ["zero", "pipe", "dir", "big"]


def hostile_repository(base, zoo):
    """dense (good), plus model.onnx as: a link to /dev/zero, a FIFO, a directory, and a sparse
    file of 3 GiB (no disk used)."""
    repo = model_zoo.make_repository(zoo, base / "repository", ["dense"])
    for name in HOSTILE:
        (repo / name / "1").mkdir(parents=True)
    os.symlink("/dev/zero", repo / "zero" / "1" / "model.onnx")
    os.mkfifo(repo / "pipe" / "1" / "model.onnx")
    (repo / "dir" / "1" / "model.onnx").mkdir()
    with open(repo / "big" / "1" / "model.onnx", "wb") as f:
        f.truncate(3 << 30)
    return repo


def start(tmp_path, repo, args, **kw) -> oip.Server:
    srv = oip.Server(repo, tmp_path / "swerve.log", args)
    _RUNNING.append(srv)
    try:
        srv.start(timeout=60, **kw)
    except BaseException:
        _RUNNING.remove(srv)
        raise
    return srv


def stop(srv):
    srv.stop()
    _RUNNING.remove(srv)


def peak_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/pid/status")


def reasons(stub) -> dict[str, tuple[str, str]]:
    return {m.name: (m.state, m.reason) for m in stub.RepositoryIndex(pb.RepositoryIndexRequest(), timeout=10).models
            if m.version == "1" or m.version == ""}


def test_hostile_files_refused_and_server_ready_without_strict(tmp_path, zoo):
    repo = hostile_repository(tmp_path, zoo)
    srv = start(tmp_path, repo, ["--strict-readiness", "false"], wait_for=["dense"])
    try:
        stub = srv.stub()
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is True
        idx = reasons(stub)
        model = lambda n: str(repo / n / "1" / "model.onnx")
        assert idx["zero"][0] == "UNAVAILABLE" and f"{model('zero')} is a character device" in idx["zero"][1], idx["zero"]
        assert "at most 2147483648 bytes" in idx["zero"][1], idx["zero"]
        assert f"{model('pipe')} is a FIFO (named pipe), not a regular file" in idx["pipe"][1], idx["pipe"]
        assert f"{model('dir')} is a directory" in idx["dir"][1], idx["dir"]
        assert f"{model('big')} is 3221225472 bytes, above the limit of 2147483648 bytes" in idx["big"][1], idx["big"]
        assert peak_rss(srv.proc.pid) < PEAK_RSS_BOUND, f"peak RSS {peak_rss(srv.proc.pid) >> 20} MiB"
        samples = parse_metrics(srv.metrics())
        for name in HOSTILE:
            assert metric_sum(samples, "swerve_model_load_failures_total", model=name) >= 1, name
        # The FIFO still refuses at once when loaded again, and dense keeps serving.
        err = expect_code(grpc.StatusCode.FAILED_PRECONDITION, stub.RepositoryModelLoad,
                          pb.RepositoryModelLoadRequest(model_name="pipe"), timeout=30)
        assert "FIFO" in err.details(), err.details()
        oip.infer(stub, "dense", {"x": zoo.cases["dense"].make_inputs(2)}, timeout=20)
    finally:
        stop(srv)


def test_strict_readiness_waits_for_every_expected_model(tmp_path, zoo):
    """Default (strict): the hostile models are expected and not ready, so ServerReady and
    health "" say no, naming nothing ready is wrong with dense; unloading them (explicit model
    control) makes the server ready; unloading dense too makes it not ready again."""
    repo = hostile_repository(tmp_path, zoo)
    srv = start(tmp_path, repo, [], wait_for=["dense"], require_server_ready=False)
    try:
        stub, health = srv.stub(), srv.health_stub()
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is False
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == HealthStatus.NOT_SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service="dense"), timeout=10).status == HealthStatus.SERVING
        assert "not ready" in srv.log_tail(200), srv.log_tail(20)
        for name in HOSTILE:
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name), timeout=30)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is True
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == HealthStatus.SERVING
        stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="dense"), timeout=30)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is False
        assert health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10).status == HealthStatus.NOT_SERVING
        stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="dense"), timeout=30)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=10).ready is True
    finally:
        stop(srv)


def test_max_model_bytes_flag(tmp_path, zoo):
    repo = model_zoo.make_repository(zoo, tmp_path / "repository", ["dense"])
    srv = start(tmp_path, repo, ["--max-model-bytes", "100"], require_server_ready=False)
    try:
        state, reason = reasons(srv.stub())["dense"]
        size = os.path.getsize(repo / "dense" / "1" / "model.onnx")
        assert state == "UNAVAILABLE" and f"is {size} bytes, above the limit of 100 bytes" in reason, reason
    finally:
        stop(srv)


@pytest.mark.parametrize("args", [["--model-load-timeout", "0"], ["--max-model-bytes", "0"],
                                  ["--strict-readiness", "maybe"]])
def test_bad_flag_values_refused(tmp_path, args):
    (tmp_path / "repository").mkdir()
    proc = subprocess.run([oip.swerve_bin(), "serve", "--repository", str(tmp_path / "repository"),
                           "--grpc-port", "0", "--metrics-port", "0", *args],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert args[0] in proc.stderr, proc.stderr
